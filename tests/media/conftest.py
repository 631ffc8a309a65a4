"""Fixtures for the photo pipeline and storage tests: the real-world photos, and a real S3 server (moto)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The project is not installed into the venv and pytest puts only this directory on sys.path, so make
# `import app` work from any working directory (a no-op once something else has done it).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PHOTOS = ROOT / "tests" / "fixtures" / "photos"
BUCKET = "gridcase-test"
S3_CREDENTIALS = {"access_key": "testing", "secret_key": "testing", "region": "us-east-1"}


@pytest.fixture(scope="session")
def photos() -> Path:
    """The directory of real camera and phone photos (see its README.md)."""
    return PHOTOS


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible HTTP server (moto's server mode) on a free local port, with one bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=S3_CREDENTIALS["region"],
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3_storage(s3_endpoint):
    from app.media.storage import S3Storage

    # A prefix per test keeps tests apart in the one session-wide bucket.
    return S3Storage(BUCKET, endpoint_url=s3_endpoint, prefix=f"t-{uuid.uuid4().hex[:12]}",
                     **S3_CREDENTIALS)


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    """Each storage test runs against both implementations."""
    if request.param == "local":
        from app.media.storage import LocalStorage

        return LocalStorage(tmp_path / "media")
    return request.getfixturevalue("s3_storage")
