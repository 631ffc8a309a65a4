"""Downloads through a real gunicorn, byte for byte: every variant of photos below and above 4 KiB, on local
and S3 storage, compared by sha256 with the object the store holds; Range on originals; ETag / 304.

The Flask test client cannot see this: gunicorn sends a file with ``sendfile`` from the descriptor's own
offset, so a read on the sent file (a format sniff through Python's buffer) once cost the first 4 KiB.
"""

from __future__ import annotations

import hashlib
import io

import pytest
import requests
from factories import TEST_USERS
from helpers import report_op
from PIL import Image
from server import ApiClient, start_server

VARIANTS = ("thumb", "display", "original")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tiny(photos, fmt: str) -> bytes:
    """A real camera photo scaled down to well under 4 KiB (with its EXIF, so it is stored as sent)."""
    with Image.open(photos / "Canon_40D.jpg") as img:
        exif = img.info.get("exif", b"")
        small = img.resize((48, 32))
        small.info.pop("icc_profile", None)
        buf = io.BytesIO()
        small.save(buf, fmt, **({"exif": exif, "quality": 60} if fmt == "JPEG" else {}))
    data = buf.getvalue()
    assert len(data) < 4096
    return data


@pytest.fixture(params=["local", "s3"])
def served(request, database_url, tmp_path):
    """gunicorn (2 workers) on local storage or on a real S3-compatible server; yields (url, read_object)."""
    env = {"GRIDCASE_LOGIN_RATE_LIMIT": "1000 per minute"}
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        s3_storage = request.getfixturevalue("s3_storage")  # a bucket of its own prefix, on the moto server
        bucket, prefix, s3 = s3_storage.bucket, s3_storage.prefix.rstrip("/"), s3_storage.client
        env.update({"GRIDCASE_MEDIA_STORAGE": "s3", "GRIDCASE_S3_BUCKET": bucket, "GRIDCASE_S3_ENDPOINT_URL": endpoint,
                    "GRIDCASE_S3_REGION": "us-east-1", "GRIDCASE_S3_ACCESS_KEY_ID": "testing",
                    "GRIDCASE_S3_SECRET_ACCESS_KEY": "testing", "GRIDCASE_S3_PREFIX": prefix})

        def stored(variant: str, digest: str) -> bytes:
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
                    if o["Key"].startswith(f"{prefix}/{variant}/") and digest in o["Key"]]
            assert len(keys) <= 1, keys
            return s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read() if keys else None
    else:
        def stored(variant: str, digest: str) -> bytes:
            found = [p for p in (tmp_path / "media" / variant).rglob(f"*{digest}*") if p.is_file()]
            assert len(found) <= 1, found
            return found[0].read_bytes() if found else None

    server = start_server(database_url, tmp_path, workers=2, extra_env=env)
    try:
        yield server.url, stored
    finally:
        server.stop()


@pytest.mark.slow
def test_every_variant_byte_for_byte(served, photos):
    url, stored = served
    worker = ApiClient(url, "wanggeyuan", TEST_USERS["wanggeyuan"][2], "dl-worker")
    reviewer = ApiClient(url, "reviewer", TEST_USERS["reviewer"][2], "dl-reviewer")
    samples = {
        "tiny JPEG": _tiny(photos, "JPEG"),
        "tiny PNG": _tiny(photos, "PNG"),
        "Canon 40D (8 KB)": (photos / "Canon_40D.jpg").read_bytes(),
        "DSCN0021 (large)": (photos / "DSCN0021.jpg").read_bytes(),
        "HEIF": (photos / "samplefilehub.heif").read_bytes(),
    }
    hashes = [sha(data) for data in samples.values()]
    worker.sync([report_op(photos=hashes)])
    worker.login()
    reviewer.login()
    for label, data in samples.items():
        r = requests.put(f"{url}/api/v1/media/{sha(data)}", data=data, timeout=30,
                         headers={"Authorization": f"Bearer {worker.access_token}"})
        assert r.status_code == 201, (label, r.text)
    for label, data in samples.items():
        digest = sha(data)
        for variant in VARIANTS:
            r = requests.get(f"{url}/api/v1/media/{digest}?variant={variant}", timeout=30,
                             headers={"Authorization": f"Bearer {reviewer.access_token}"})
            assert r.status_code == 200, (label, variant, r.status_code)
            # A clean upload is its own display copy: then the display object is the original's.
            kept = stored(variant, digest) or (stored("original", digest) if variant == "display" else None)
            assert kept, (label, variant)
            assert sha(r.content) == sha(kept), (label, variant, len(r.content), len(kept))
            assert r.headers["ETag"] == f'"{digest}-{variant}"'
            if variant == "original":
                assert r.content == data, (label, len(r.content), len(data))
                assert r.headers["Accept-Ranges"] == "bytes"


@pytest.mark.slow
def test_range_and_etag_on_originals(served, photos):
    """A reviewer on a slow link resumes an original: Range (and If-Range) answer 206 with exactly the
    asked bytes; If-None-Match answers 304 with no body on every variant; a range past the end, 416."""
    url, _ = served
    data = (photos / "DSCN0021.jpg").read_bytes()
    digest = sha(data)
    worker = ApiClient(url, "wanggeyuan", TEST_USERS["wanggeyuan"][2], "rg-worker")
    worker.sync([report_op(photos=[digest])])
    worker.login()
    assert requests.put(f"{url}/api/v1/media/{digest}", data=data, timeout=30,
                        headers={"Authorization": f"Bearer {worker.access_token}"}).status_code == 201
    reviewer = ApiClient(url, "reviewer", TEST_USERS["reviewer"][2], "rg-reviewer")
    reviewer.login()
    auth = {"Authorization": f"Bearer {reviewer.access_token}"}
    original = f"{url}/api/v1/media/{digest}?variant=original"

    half = len(data) // 2
    first = requests.get(original, headers={**auth, "Range": f"bytes=0-{half - 1}"}, timeout=30)
    assert first.status_code == 206 and first.content == data[:half]
    assert first.headers["Content-Range"] == f"bytes 0-{half - 1}/{len(data)}"
    etag = first.headers["ETag"]
    rest = requests.get(original, headers={**auth, "Range": f"bytes={half}-", "If-Range": etag}, timeout=30)
    assert rest.status_code == 206 and first.content + rest.content == data
    tail = requests.get(original, headers={**auth, "Range": "bytes=-100"}, timeout=30)
    assert tail.status_code == 206 and tail.content == data[-100:]
    stale = requests.get(original, headers={**auth, "Range": f"bytes={half}-", "If-Range": '"other"'}, timeout=30)
    assert stale.status_code == 200 and stale.content == data  # the validator changed: the whole object
    past = requests.get(original, headers={**auth, "Range": f"bytes={len(data) + 10}-"}, timeout=30)
    assert past.status_code == 416 and past.json()["code"] == "range_not_satisfiable"
    assert past.headers["Content-Range"] == f"bytes */{len(data)}"

    for variant in VARIANTS:
        link = f"{url}/api/v1/media/{digest}?variant={variant}"
        tag = requests.get(link, headers=auth, timeout=30).headers["ETag"]
        again = requests.get(link, headers={**auth, "If-None-Match": tag}, timeout=30)
        assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == tag
        other = requests.get(link, headers={**auth, "If-None-Match": '"nope"'}, timeout=30)
        assert other.status_code == 200 and other.content
    # Naming the right ETag does not get an outsider a 304 for a photo they may not see.
    outsider = ApiClient(url, "worker_b", TEST_USERS["worker_b"][2], "rg-outsider")
    outsider.login()
    r = requests.get(f"{url}/api/v1/media/{digest}?variant=thumb", timeout=30,
                     headers={"Authorization": f"Bearer {outsider.access_token}", "If-None-Match": f'"{digest}-thumb"'})
    assert r.status_code == 404
