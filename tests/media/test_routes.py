"""The photo routes end to end: missing hashes, PUT by hash, multipart POST, scoped GET of the variants."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import pytest
from helpers import Phone, report_op
from PIL import Image
from sqlalchemy import func, select

PHOTO = "DSCN0010.jpg"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute", "LOGIN_IP_RATE_LIMIT": "1000 per minute"}


@pytest.fixture
def jpeg(photos) -> bytes:
    return (photos / PHOTO).read_bytes()


@pytest.fixture
def worker(client, auth):
    return Phone(client, auth, "wanggeyuan")


def photo_rows(app) -> int:
    from app.extensions import db
    from app.media.models import Photo

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Photo))


def put(client, headers, data, digest=None):
    return client.put(f"/api/v1/media/{digest or sha(data)}", data=data, headers=headers,
                      content_type="application/octet-stream")


def test_report_then_upload_fills_missing_photos(app, client, worker, jpeg):
    digest = sha(jpeg)
    op = report_op(photos=[digest])
    first = worker.one(op)
    assert first["missing_photos"] == [digest]

    r = client.post("/api/v1/media/missing", json={"hashes": [digest, "0" * 64]}, headers=worker.headers)
    assert r.status_code == 200
    assert r.get_json() == {"missing": [digest, "0" * 64]}

    wrong = put(client, worker.headers, jpeg[:-1] + b"\x00", digest)
    assert wrong.status_code == 422
    assert wrong.get_json()["code"] == "hash_mismatch"
    assert photo_rows(app) == 0

    created = put(client, worker.headers, jpeg)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["sha256"] == digest and body["format"] == "JPEG"
    assert body["width"] > 0 and body["height"] > 0
    assert body["exif_lat"] == pytest.approx(43.46, abs=0.1)
    again = put(client, worker.headers, jpeg)
    assert again.status_code == 200
    assert photo_rows(app) == 1

    assert worker.one(op)["missing_photos"] == []
    r = client.post("/api/v1/media/missing", json={"hashes": [digest]}, headers=worker.headers)
    assert r.get_json() == {"missing": []}


def test_missing_validates_hashes(client, worker):
    for body in ({"hashes": ["ABC"]}, {"hashes": ["A" * 64]}, {"hashes": ["0" * 64] * 201}, {}):
        r = client.post("/api/v1/media/missing", json=body, headers=worker.headers)
        assert r.status_code == 422, body


def test_multipart_heic(client, worker, photos):
    data = (photos / "iphone_13_pro_max.HEIC").read_bytes()
    r = client.post("/api/v1/media", headers=worker.headers, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(data), "wx-tmp-123.HEIC")})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["sha256"] == sha(data)
    assert r.get_json()["format"] == "HEIF"
    thumb = client.get(f"/api/v1/media/{sha(data)}?variant=thumb", headers=worker.headers)
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"


def test_broken_uploads_are_refused_with_problem_json(app, client, worker, jpeg):
    truncated = jpeg[: len(jpeg) // 2]
    r = put(client, worker.headers, truncated)
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    assert r.get_json()["code"] == "photo_corrupt"

    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    r = client.post("/api/v1/media", headers=worker.headers, content_type="multipart/form-data",
                    data={"photo": (io.BytesIO(svg), "photo.jpg")})
    assert r.status_code == 422
    assert r.get_json()["code"] == "photo_unsupported_format"
    assert photo_rows(app) == 0


def test_get_variants_and_scope(client, auth, worker, jpeg):
    digest = sha(jpeg)
    worker.one(report_op(photos=[digest]))
    assert put(client, worker.headers, jpeg).status_code == 201

    for variant in ("thumb", "display"):
        r = client.get(f"/api/v1/media/{digest}?variant={variant}", headers=worker.headers)
        assert r.status_code == 200
        assert r.mimetype == "image/jpeg"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["ETag"] == f'"{digest}-{variant}"'
        assert "immutable" in r.headers["Cache-Control"] and "private" in r.headers["Cache-Control"]
        assert r.headers["Content-Disposition"].startswith("inline")
        image = Image.open(io.BytesIO(r.data))
        assert image.format == "JPEG"
        assert not image.getexif()
        assert max(image.size) <= (320 if variant == "thumb" else 1600)
    assert client.get(f"/api/v1/media/{digest}", headers=worker.headers).headers["ETag"] == f'"{digest}-display"'

    assert client.get(f"/api/v1/media/{digest}?variant=original", headers=worker.headers).status_code == 404
    reviewer = auth.headers("reviewer")
    r = client.get(f"/api/v1/media/{digest}?variant=original", headers=reviewer)
    assert r.status_code == 200
    assert r.data == jpeg
    assert r.mimetype == "image/jpeg"
    assert r.headers["Content-Disposition"].startswith("attachment")
    assert r.headers["X-Content-Type-Options"] == "nosniff"

    for outsider in ("reviewer_b", "worker_b", "volunteer_b"):
        headers = auth.headers(outsider)
        for variant in ("thumb", "display", "original"):
            r = client.get(f"/api/v1/media/{digest}?variant={variant}", headers=headers)
            assert r.status_code == 404, (outsider, variant)
            assert digest not in r.get_data(as_text=True)

    r = client.get(f"/api/v1/media/{digest}?variant=thumb", headers={**worker.headers,
                                                                      "If-None-Match": f'"{digest}-thumb"'})
    assert r.status_code == 304 and not r.data
    assert r.headers["ETag"] == f'"{digest}-thumb"'
    r = client.get(f"/api/v1/media/{digest}?variant=bogus", headers=worker.headers)
    assert r.status_code == 422


def test_a_clean_upload_is_stored_once_and_served_as_its_display_copy(app, client, auth, worker, jpeg, photos):
    from app.extensions import db
    from app.media.models import Photo

    # What the PWA's canvas uploads: upright, display-sized, no metadata at all.
    with Image.open(photos / "DSCN0040.jpg") as img:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=75)
    clean = buf.getvalue()
    media = app.config["MEDIA_DIR"]
    for data, objects in ((clean, ["original", "thumb"]), (jpeg, ["display", "original", "thumb"])):
        digest = sha(data)
        worker.one(report_op(photos=[digest]))
        assert put(client, worker.headers, data).status_code == 201
        stored = sorted(p.relative_to(media).parts[0] for p in Path(media).rglob(f"*{digest}*") if p.is_file())
        assert stored == objects
        with app.app_context():
            assert db.session.get(Photo, digest).display_is_original is (data is clean)
        display = client.get(f"/api/v1/media/{digest}?variant=display", headers=worker.headers)
        assert display.status_code == 200 and display.mimetype == "image/jpeg"
        assert display.headers["ETag"] == f'"{digest}-display"'
        assert (display.data == data) is (data is clean)  # the camera's file is stripped of its EXIF
        assert not Image.open(io.BytesIO(display.data)).getexif()
        # The same bytes or not, the original variant stays the reviewers'.
        assert client.get(f"/api/v1/media/{digest}?variant=original", headers=worker.headers).status_code == 404
        original = client.get(f"/api/v1/media/{digest}?variant=original", headers=auth.headers("reviewer"))
        assert original.status_code == 200 and original.data == data
        assert client.get(f"/api/v1/media/{digest}?variant=display",
                          headers=auth.headers("worker_b")).status_code == 404


def test_unlinked_photo_only_for_its_uploader(client, auth, worker, photos):
    data = (photos / "Canon_40D.jpg").read_bytes()
    assert put(client, worker.headers, data).status_code == 201
    assert client.get(f"/api/v1/media/{sha(data)}?variant=thumb", headers=worker.headers).status_code == 200
    other = auth.headers("worker_a2")
    assert client.get(f"/api/v1/media/{sha(data)}?variant=thumb", headers=other).status_code == 404


def test_original_that_is_not_an_image_type_is_served_as_octet_stream(app, client, auth, worker, jpeg):
    """The content type of an original comes from sniffing its stored bytes, never from the row alone."""
    from app.media import services
    from app.media.storage import key_for

    digest = sha(jpeg)
    worker.one(report_op(photos=[digest]))
    assert put(client, worker.headers, jpeg).status_code == 201
    with app.test_request_context():
        store = services.storage()
        path = store.root / key_for("original", digest)
    path.write_bytes(b"<html><script>alert(1)</script></html>")
    r = client.get(f"/api/v1/media/{digest}?variant=original", headers=auth.headers("reviewer"))
    assert r.status_code == 200
    assert r.mimetype == "application/octet-stream"
    assert r.headers["Content-Disposition"].startswith("attachment")


class TestLimits:
    @pytest.fixture
    def app_config(self):
        return {"MEDIA_MAX_BYTES": 50_000, "MEDIA_DAILY_BYTES_PER_USER": 200_000,
                "LOGIN_RATE_LIMIT": "1000 per minute", "LOGIN_IP_RATE_LIMIT": "1000 per minute"}

    def test_oversize_body_is_413(self, app, client, worker, jpeg):
        assert len(jpeg) > 50_000
        r = put(client, worker.headers, jpeg)
        assert r.status_code == 413
        assert r.get_json()["code"] == "payload_too_large"
        r = client.post("/api/v1/media", headers=worker.headers, content_type="multipart/form-data",
                        data={"file": (io.BytesIO(jpeg), "a.jpg")})
        assert r.status_code == 413
        assert photo_rows(app) == 0

    def test_oversize_chunked_body_is_413(self, app, client, worker, jpeg):
        """No Content-Length to refuse by: the spooler stops at the limit."""
        from pathlib import Path

        from app.errors import PayloadTooLarge
        from app.media import services

        with app.test_request_context():
            with pytest.raises(PayloadTooLarge):
                services.spool(io.BytesIO(jpeg), limit=50_000)
            assert not list(Path(services.tmp_dir()).iterdir())  # the partial file is gone


class TestQuota:
    @pytest.fixture
    def app_config(self):
        # DSCN0010 (162 kB) fits, DSCN0012 (159 kB) would take the day past 300 kB.
        return {"MEDIA_DAILY_BYTES_PER_USER": 300_000,
                "LOGIN_RATE_LIMIT": "1000 per minute", "LOGIN_IP_RATE_LIMIT": "1000 per minute"}

    def test_daily_quota_is_429(self, app, client, auth, worker, photos):
        first = (photos / "DSCN0010.jpg").read_bytes()
        second = (photos / "DSCN0012.jpg").read_bytes()
        assert put(client, worker.headers, first).status_code == 201
        r = put(client, worker.headers, second)
        assert r.status_code == 429, r.get_json()
        assert r.get_json()["code"] == "upload_quota"
        assert 0 < int(r.headers["Retry-After"]) <= 86400
        r = client.post("/api/v1/media", headers=worker.headers, content_type="multipart/form-data",
                        data={"file": (io.BytesIO(second), "a.jpg")})
        assert r.status_code == 429
        assert photo_rows(app) == 1
        # A photo already stored costs nothing; another user has their own allowance.
        assert put(client, worker.headers, first).status_code == 200
        assert put(client, auth.headers("worker_a2"), second).status_code == 201

    def test_a_body_without_content_length_is_checked_once_it_has_arrived(self, app, client, worker, photos):
        # Chunked transfer: nothing to check up front, so the spooled size is checked before the pipeline.
        first = (photos / "DSCN0010.jpg").read_bytes()
        second = (photos / "DSCN0012.jpg").read_bytes()
        assert put(client, worker.headers, first).status_code == 201
        import json

        from werkzeug.test import EnvironBuilder, run_wsgi_app

        environ = EnvironBuilder(path=f"/api/v1/media/{sha(second)}", method="PUT", data=second,
                                 headers={**worker.headers, "Content-Type": "application/octet-stream"}).get_environ()
        del environ["CONTENT_LENGTH"]  # what gunicorn passes on for Transfer-Encoding: chunked
        environ["wsgi.input_terminated"] = True
        body, status, _headers = run_wsgi_app(app, environ, buffered=True)
        assert status.startswith("429"), status
        assert json.loads(b"".join(body))["code"] == "upload_quota"
        assert photo_rows(app) == 1

    def test_an_upload_queries_the_quota_once(self, app, client, worker, photos):
        from sqlalchemy import event

        from app.extensions import db

        sums = []

        def count(conn, cursor, statement, *args):
            if "sum(" in statement.lower() and "photos" in statement.lower():
                sums.append(statement)

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert put(client, worker.headers, (photos / "DSCN0010.jpg").read_bytes()).status_code == 201
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert len(sums) == 1, sums


def test_concurrent_puts_of_one_photo_leave_one_row(app, worker, jpeg):
    results = []

    def upload():
        with app.test_client() as c:
            results.append(put(c, worker.headers, jpeg).status_code)

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 200, 200, 201], results
    assert photo_rows(app) == 1
