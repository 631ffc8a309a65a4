"""tus 1.0.0 resumable uploads: creation, HEAD offsets, resume after a lost connection, checksums,
termination, expiry, and the same pipeline at the end."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from app.extensions import db

PHOTO = Path(__file__).parent.parent / "fixtures" / "photos" / "DSCN0010.jpg"
TUS = {"Tus-Resumable": "1.0.0"}


def _meta(**values) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


@pytest.fixture
def h(auth):
    return {**auth.headers("wanggeyuan"), **TUS}


def _create(client, h, data: bytes, **meta):
    r = client.post("/api/v1/uploads/", headers={**h, "Upload-Length": str(len(data)),
                                                  "Upload-Metadata": _meta(**meta)})
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.headers["Tus-Resumable"] == "1.0.0" and r.headers["Upload-Expires"]
    return r.headers["Location"].split("/api/v1")[1]


def _patch(client, h, url, offset, chunk, checksum=None):
    headers = {**h, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
    if checksum:
        headers["Upload-Checksum"] = checksum
    return client.patch("/api/v1" + url, data=chunk, headers=headers)


def test_discovery(client):
    r = client.options("/api/v1/uploads/")
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert set(r.headers["Tus-Extension"].split(",")) == {"creation", "checksum", "termination", "expiration"}
    assert "sha256" in r.headers["Tus-Checksum-Algorithm"] and "sha1" in r.headers["Tus-Checksum-Algorithm"]


def test_lost_connection_at_60_percent_then_resume(app, client, h):
    data = PHOTO.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    url = _create(client, h, data, sha256=sha, filename="DSCN0010.jpg")
    cut = int(len(data) * 0.6)
    r = _patch(client, h, url, 0, data[:cut])
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(cut)
    # the phone comes back: where was I?
    r = client.head("/api/v1" + url, headers=h)
    assert r.status_code == 200
    assert r.headers["Upload-Offset"] == str(cut) and r.headers["Upload-Length"] == str(len(data))
    assert r.headers["Cache-Control"] == "no-store"
    # a chunk at the wrong offset is refused with the right one
    r = _patch(client, h, url, 0, data[:10])
    assert r.status_code == 409 and r.headers["Upload-Offset"] == str(cut)
    r = _patch(client, h, url, cut, data[cut:])
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["sha256"] == sha and r.headers["Upload-Offset"] == str(len(data))
    r = client.post("/api/v1/media/missing", json={"hashes": [sha]}, headers=h)
    assert r.get_json()["missing"] == []
    # the upload is finished and gone
    assert client.head("/api/v1" + url, headers=h).status_code == 404


@pytest.mark.parametrize("algorithm", ["sha256", "sha1"])
def test_checksums(client, h, algorithm):
    data = PHOTO.read_bytes()
    url = _create(client, h, data)
    chunk = data[:4096]
    good = base64.b64encode(hashlib.new(algorithm, chunk).digest()).decode()
    bad = base64.b64encode(hashlib.new(algorithm, b"other").digest()).decode()
    r = _patch(client, h, url, 0, chunk, f"{algorithm} {bad}")
    assert r.status_code == 460 and r.get_json()["code"] == "tus_checksum_mismatch"
    assert client.head("/api/v1" + url, headers=h).headers["Upload-Offset"] == "0"  # nothing kept
    r = _patch(client, h, url, 0, chunk, f"{algorithm} {good}")
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "4096"
    r = _patch(client, h, url, 4096, data[4096:], f"md5 {good}")
    assert r.status_code == 400 and r.get_json()["code"] == "tus_bad_checksum_algorithm"


def test_hash_mismatch_at_the_end_stores_nothing(client, h):
    data = PHOTO.read_bytes()
    url = _create(client, h, data, sha256="0" * 64)
    r = _patch(client, h, url, 0, data)
    assert r.status_code == 422 and r.get_json()["code"] == "hash_mismatch"
    r = client.post("/api/v1/media/missing", json={"hashes": [hashlib.sha256(data).hexdigest()]}, headers=h)
    assert len(r.get_json()["missing"]) == 1


def test_corrupt_file_refused_at_the_end(client, h):
    data = PHOTO.read_bytes()[: 20000]
    url = _create(client, h, data)
    r = _patch(client, h, url, 0, data)
    assert r.status_code == 422 and r.get_json()["code"] == "photo_corrupt"


def test_termination_and_other_users(client, auth, h):
    data = PHOTO.read_bytes()
    url = _create(client, h, data)
    outsider = {**auth.headers("worker_b"), **TUS}
    assert client.head("/api/v1" + url, headers=outsider).status_code == 404
    assert _patch(client, outsider, url, 0, data[:10]).status_code == 404
    assert client.delete("/api/v1" + url, headers=outsider).status_code == 404
    assert client.delete("/api/v1" + url, headers=h).status_code == 204
    assert client.head("/api/v1" + url, headers=h).status_code == 404


def test_expired_uploads_are_gone(app, client, h):
    from app.media.models import Upload

    data = PHOTO.read_bytes()
    url = _create(client, h, data)
    _patch(client, h, url, 0, data[:1000])
    upload_id = url.rsplit("/", 1)[1]
    with app.app_context():
        upload = db.session.get(Upload, upload_id)
        upload.expires_at -= timedelta(days=2)
        db.session.commit()
    assert client.head("/api/v1" + url, headers=h).status_code == 410
    part = Path(app.config["MEDIA_DIR"]) / "tus" / f"{upload_id}.part"
    assert not part.exists()


def test_protocol_errors(client, auth, h):
    assert client.post("/api/v1/uploads/", headers={**auth.headers("wanggeyuan"), "Upload-Length": "10"}
                       ).status_code == 412
    r = client.post("/api/v1/uploads/", headers={**h, "Upload-Length": "abc"})
    assert r.status_code == 400 and r.get_json()["code"] == "tus_bad_length"
    r = client.post("/api/v1/uploads/", headers={**h, "Upload-Length": str(10**12)})
    assert r.status_code == 413
    r = client.post("/api/v1/uploads/", headers={**h, "Upload-Length": "10", "Upload-Metadata": "sha256 !!!"})
    assert r.status_code == 400
    url = _create(client, h, b"x" * 10)
    r = client.patch("/api/v1" + url, data=b"x", headers={**h, "Upload-Offset": "0", "Content-Type": "text/plain"})
    assert r.status_code == 415
    assert client.post("/api/v1/uploads/", headers={**TUS, "Upload-Length": "10"}).status_code == 401


def test_repeat_put_of_a_stored_photo_keeps_the_connection_usable(app, client, h):
    """The cheap 200 for a stored photo still reads the body (gunicorn would otherwise drop the kept-alive
    connection); through the test client: the answer is 200 and the body was consumed."""
    data = PHOTO.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    first = client.put(f"/api/v1/media/{sha}", data=data, headers=h)
    assert first.status_code == 201
    again = client.put(f"/api/v1/media/{sha}", data=data, headers=h)
    assert again.status_code == 200 and again.get_json() == {"sha256": sha, "stored": True}


def test_bodiless_answers_carry_no_html_type(client, h):
    """tus answers 201/204 and HEAD without a body: no Content-Type at all (Flask would say text/html)."""
    data = PHOTO.read_bytes()
    url = _create(client, h, data)
    created = client.post("/api/v1/uploads/", headers={**h, "Upload-Length": "5"})
    answers = [client.options("/api/v1/uploads/"), created, client.head("/api/v1" + url, headers=h),
               _patch(client, h, url, 0, data[:1000]), client.delete("/api/v1" + url, headers=h)]
    assert [a.status_code for a in answers] == [204, 201, 200, 204, 204]
    for answer in answers:
        assert "Content-Type" not in answer.headers, answer.headers


@pytest.mark.parametrize("checksum", [False, True])
def test_a_chunk_past_upload_length_is_refused_not_cut(client, h, checksum):
    data = PHOTO.read_bytes()
    url = _create(client, h, data, sha256=hashlib.sha256(data).hexdigest())
    assert _patch(client, h, url, 0, data[:4000]).status_code == 204
    too_long = data[4000:] + b"\x00" * 10
    sig = "sha256 " + base64.b64encode(hashlib.sha256(too_long).digest()).decode() if checksum else None
    r = _patch(client, h, url, 4000, too_long, sig)
    assert r.status_code == 413 and r.get_json()["code"] == "tus_chunk_too_long"
    assert r.headers["Upload-Offset"] == "4000"
    assert client.head("/api/v1" + url, headers=h).headers["Upload-Offset"] == "4000"  # nothing appended
    done = _patch(client, h, url, 4000, data[4000:])
    assert done.status_code == 200 and done.get_json()["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_overruns_through_gunicorn(database_url, tmp_path):
    """Through a real gunicorn: a PATCH past Upload-Length, declared by its Content-Length or streamed in
    chunked encoding (no length until the end), is refused with 413 and leaves the offset where it was."""
    import requests
    from factories import TEST_USERS
    from server import ApiClient, start_server

    data = PHOTO.read_bytes()
    with start_server(database_url, tmp_path, workers=2, worker_class="gthread", threads=2) as server:
        phone = ApiClient(server.url, "wanggeyuan", TEST_USERS["wanggeyuan"][2], "tus-overrun-phone")
        phone.login()
        auth_h = {"Authorization": f"Bearer {phone.access_token}", **TUS}
        created = requests.post(f"{server.url}/api/v1/uploads/", timeout=10,
                                headers={**auth_h, "Upload-Length": str(len(data))})
        assert created.status_code == 201 and "Content-Type" not in created.headers
        url = created.headers["Location"]
        patch_h = {**auth_h, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
        declared = requests.patch(url, data=data + b"xx", headers=patch_h, timeout=10)

        def chunked():
            for i in range(0, len(data) + 70_000, 16_384):
                yield (data + b"\x00" * 70_000)[i:i + 16_384]

        streamed = requests.patch(url, data=chunked(), headers=patch_h, timeout=10)
        for answer in (declared, streamed):
            assert answer.status_code == 413 and answer.json()["code"] == "tus_chunk_too_long"
            assert answer.headers["Upload-Offset"] == "0"
        assert requests.head(url, headers=auth_h, timeout=10).headers["Upload-Offset"] == "0"
        done = requests.patch(url, data=data, headers=patch_h, timeout=10)
        assert done.status_code == 200 and done.json()["sha256"] == hashlib.sha256(data).hexdigest()
