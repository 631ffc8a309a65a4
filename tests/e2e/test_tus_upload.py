"""A large photo goes through tus from the browser: the connection breaks part-way, the page asks the server
how far it got and sends only the rest."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from PIL import Image
from test_field_app import log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _large_photo() -> bytes:
    # noise compresses badly: a 1600 x 1200 JPEG at quality 95 is well over the 1 MiB tus threshold
    img = Image.effect_noise((1600, 1200), 64).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def test_large_photo_resumes_after_a_broken_connection(phone, api):
    data = _large_photo()
    assert len(data) > 1024 * 1024
    sha = hashlib.sha256(data).hexdigest()
    page = phone.new_page()
    log_in(page, "wanggeyuan")
    patches = {"n": 0, "bytes": 0}

    def on_patch(route):
        patches["n"] += 1
        if patches["n"] == 3:  # the network drops during the third chunk
            route.abort("connectionreset")
            return
        patches["bytes"] += len(route.request.post_data_buffer or b"")
        route.continue_()

    page.route("**/api/v1/uploads/*", lambda route: on_patch(route) if route.request.method == "PATCH"
               else route.continue_())
    first = page.evaluate("""async ([b64, sha]) => {
        const { tusPhoto } = await import('/js/api.js');
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        try { await tusPhoto(sha, new Blob([bytes], {type: 'image/jpeg'})); return 'done'; }
        catch (e) { return e.name; }
    }""", [base64.b64encode(data).decode(), sha])
    assert first == "Offline"
    sent_before = patches["bytes"]
    assert 0 < sent_before < len(data)
    second = page.evaluate("""async ([b64, sha]) => {
        const { tusPhoto } = await import('/js/api.js');
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        await tusPhoto(sha, new Blob([bytes], {type: 'image/jpeg'})); return 'done';
    }""", [base64.b64encode(data).decode(), sha])
    assert second == "done"
    # only the rest was sent again, not the whole file
    assert patches["bytes"] - sent_before <= len(data) - sent_before + 256 * 1024
    worker = api.login("wanggeyuan")
    r = api.http.post(api.base_url + "/api/v1/media/missing", json={"hashes": [sha]},
                      headers={"Authorization": worker["Authorization"]})
    assert r.json()["missing"] == []
