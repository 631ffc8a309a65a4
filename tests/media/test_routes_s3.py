"""The whole photo path (upload, pipeline, serving) on S3-compatible storage: a real moto server."""

from __future__ import annotations

import hashlib
import io
import uuid

import boto3
import pytest
from helpers import Phone, report_op
from PIL import Image

BUCKET = "gridcase-test"  # the one bucket of the session's moto server (tests/media/conftest.py)


@pytest.fixture
def app_config(s3_endpoint):
    return {"MEDIA_STORAGE": "s3", "S3_BUCKET": BUCKET, "S3_ENDPOINT_URL": s3_endpoint, "S3_REGION": "us-east-1",
            "S3_ACCESS_KEY_ID": "testing", "S3_SECRET_ACCESS_KEY": "testing", "S3_PREFIX": f"s3-{uuid.uuid4().hex[:8]}"}


def test_upload_and_serve_through_s3(app, client, auth, photos, s3_endpoint):
    data = (photos / "DSCN0021.jpg").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    worker = Phone(client, auth, "wanggeyuan")
    worker.one(report_op(photos=[digest]))
    r = client.put(f"/api/v1/media/{digest}", data=data, headers={**worker.headers,
                                                                   "Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.get_json()
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    prefix = app.config["S3_PREFIX"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    assert any(k.endswith(digest) and "original" in k for k in keys)
    assert len([k for k in keys if digest in k]) == 3  # original, display, thumb
    thumb = client.get(f"/api/v1/media/{digest}?variant=thumb", headers=worker.headers)
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg" and thumb.data[:3] == b"\xff\xd8\xff"
    original = client.get(f"/api/v1/media/{digest}?variant=original", headers=auth.headers("reviewer"))
    assert original.status_code == 200 and original.data == data

    # A clean upload (the PWA's: no metadata) is its own display copy: two objects, display = original.
    with Image.open(photos / "DSCN0040.jpg") as img:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=75)
    clean = buf.getvalue()
    digest = hashlib.sha256(clean).hexdigest()
    worker.one(report_op(photos=[digest]))
    r = client.put(f"/api/v1/media/{digest}", data=clean, headers={**worker.headers,
                                                                    "Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.get_json()
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    assert sorted(k.split("/")[1] for k in keys if digest in k) == ["original", "thumb"]
    display = client.get(f"/api/v1/media/{digest}?variant=display", headers=worker.headers)
    assert display.status_code == 200 and display.mimetype == "image/jpeg" and display.data == clean
