"""Photo storage: the same contract for the local directory and for S3 (a real moto server over HTTP)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from app.media import storage as storage_module
from app.media.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    check_key,
    file_sha256,
    key_for,
    storage_from_config,
    store_photo,
)

SHA = hashlib.sha256(b"a photo").hexdigest()
OTHER = hashlib.sha256(b"another photo").hexdigest()


def _source(tmp_path: Path, data: bytes, name: str = "src.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- keys -------------------------------------------------------------------------------------------


def test_key_for_builds_fanned_out_keys():
    assert key_for("original", SHA) == f"original/{SHA[:2]}/{SHA[2:4]}/{SHA}"
    assert key_for("thumb", SHA) == f"thumb/{SHA[:2]}/{SHA[2:4]}/{SHA}.jpg"
    assert key_for("display", SHA) == f"display/{SHA[:2]}/{SHA[2:4]}/{SHA}.jpg"
    assert check_key(key_for("thumb", SHA)) == key_for("thumb", SHA)


@pytest.mark.parametrize("variant, sha", [
    ("original", "../x"),
    ("original", "../" * 20 + "etc/passwd"),
    ("original", SHA.upper()),
    ("original", SHA[:-1]),
    ("original", SHA + "0"),
    ("original", SHA + "\n"),
    ("original", SHA[:-1] + "/"),
    ("original", None),
    ("../original", SHA),
    ("icon", SHA),
])
def test_key_for_refuses_anything_but_a_hash(variant, sha):
    with pytest.raises(ValueError):
        key_for(variant, sha)


BAD_KEYS = [
    "../x",
    "/etc/passwd",
    f"original/{SHA[:2]}/{SHA[2:4]}/../../../{SHA}",
    f"original/00/00/{SHA}",  # fan-out disagrees with the hash
    f"original/{SHA[:2]}/{SHA[2:4]}/{SHA}.jpg",  # suffix on the wrong variant
    f"thumb/{SHA[:2]}/{SHA[2:4]}/{SHA}",
    f"thumb/{SHA[:2]}/{SHA[2:4]}/{SHA}.jpg\n",
    f"/thumb/{SHA[:2]}/{SHA[2:4]}/{SHA}.jpg",
    "",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_every_storage_method_refuses_a_bad_key(storage, tmp_path, key):
    src = _source(tmp_path, b"x")
    for call in (lambda: storage.exists(key), lambda: storage.put_file(key, src), lambda: storage.open(key),
                 lambda: storage.size(key), lambda: storage.delete(key)):
        with pytest.raises(ValueError):
            call()


def test_local_storage_never_writes_outside_its_root(tmp_path):
    store = LocalStorage(tmp_path / "media")
    with pytest.raises(ValueError):
        store.put_file("../x", _source(tmp_path, b"x"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "media").exists()


# --- the contract, on both backends -----------------------------------------------------------------


def test_round_trip(storage, tmp_path):
    assert isinstance(storage, Storage)
    data = os.urandom(200_000)
    key = key_for("original", hashlib.sha256(data).hexdigest())
    assert not storage.exists(key)

    storage.put_file(key, _source(tmp_path, data))
    assert storage.exists(key)
    assert storage.size(key) == len(data)
    stream = storage.open(key)
    try:
        assert stream.read() == data
    finally:
        stream.close()

    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # deleting what is gone is not an error


def test_put_accepts_str_and_pathlike(storage, tmp_path):
    src = _source(tmp_path, b"jpeg bytes")
    storage.put_file(key_for("thumb", SHA), src)
    storage.put_file(key_for("display", SHA), str(src))
    assert storage.size(key_for("thumb", SHA)) == storage.size(key_for("display", SHA)) == 10


def test_put_again_replaces_whole(storage, tmp_path):
    key = key_for("display", SHA)
    storage.put_file(key, _source(tmp_path, b"first version, longer", "a"))
    storage.put_file(key, _source(tmp_path, b"second", "b"))
    with storage.open(key) as stream:
        assert stream.read() == b"second"


def test_missing_objects(storage):
    key = key_for("thumb", OTHER)
    assert storage.exists(key) is False
    with pytest.raises(FileNotFoundError):
        storage.open(key)
    with pytest.raises(FileNotFoundError):
        storage.size(key)


def test_large_file_round_trip(storage, tmp_path):
    # Over boto3's 8 MiB multipart threshold, so S3 completes a multipart upload; locally, many copy blocks.
    data = os.urandom(9 * 1024 * 1024 + 123)
    sha = hashlib.sha256(data).hexdigest()
    src = _source(tmp_path, data)
    assert file_sha256(src) == sha
    storage.put_file(key_for("original", sha), src)
    with storage.open(key_for("original", sha)) as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == sha


def test_put_of_a_missing_source_leaves_nothing(storage, tmp_path):
    key = key_for("original", SHA)
    with pytest.raises((OSError, Exception)):
        storage.put_file(key, tmp_path / "does-not-exist")
    assert not storage.exists(key)


# --- atomicity --------------------------------------------------------------------------------------


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_local_put_failing_at_the_rename_leaves_nothing(tmp_path, monkeypatch):
    store = LocalStorage(tmp_path / "media")
    key = key_for("original", SHA)

    def broken_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(storage_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        store.put_file(key, _source(tmp_path, b"x" * 100_000))
    assert not store.exists(key)
    assert _all_files(tmp_path / "media") == []  # no object, and no temp file left either


def test_local_put_failing_midway_leaves_nothing_and_keeps_the_old_object(tmp_path, monkeypatch):
    store = LocalStorage(tmp_path / "media")
    key = key_for("original", SHA)
    store.put_file(key, _source(tmp_path, b"the old object", "old"))

    def copy_half_then_fail(src, dst, length=0):
        dst.write(src.read(50_000))
        raise OSError("source became unreadable")

    monkeypatch.setattr(storage_module.shutil, "copyfileobj", copy_half_then_fail)
    with pytest.raises(OSError, match="unreadable"):
        store.put_file(key, _source(tmp_path, b"y" * 100_000, "new"))
    monkeypatch.undo()

    with store.open(key) as stream:
        assert stream.read() == b"the old object"
    files = _all_files(tmp_path / "media")
    assert [p.name for p in files] == [SHA]
    store.delete(key)

    monkeypatch.setattr(storage_module.shutil, "copyfileobj", copy_half_then_fail)
    with pytest.raises(OSError):
        store.put_file(key, _source(tmp_path, b"y" * 100_000, "new2"))
    assert not store.exists(key)
    assert _all_files(tmp_path / "media") == []


def test_s3_multipart_upload_failing_midway_leaves_nothing(s3_storage, tmp_path):
    key = key_for("original", SHA)
    calls = []

    def fail_second_part(params, **kwargs):
        calls.append(params.get("PartNumber"))
        if len(calls) >= 2:
            raise ConnectionError("network dropped mid-upload")

    s3_storage.client.meta.events.register("before-call.s3.UploadPart", fail_second_part)
    with pytest.raises(ConnectionError):
        s3_storage.put_file(key, _source(tmp_path, os.urandom(17 * 1024 * 1024)))
    s3_storage.client.meta.events.unregister("before-call.s3.UploadPart", fail_second_part)

    assert len(calls) >= 2  # it really failed partway, after a part had gone up
    assert not s3_storage.exists(key)
    listed = s3_storage.client.list_objects_v2(Bucket=s3_storage.bucket, Prefix=s3_storage.prefix)
    assert listed.get("KeyCount", 0) == 0


def test_s3_objects_live_under_the_prefix(s3_storage, tmp_path):
    s3_storage.put_file(key_for("thumb", SHA), _source(tmp_path, b"thumb"))
    listed = s3_storage.client.list_objects_v2(Bucket=s3_storage.bucket, Prefix=s3_storage.prefix)
    assert [o["Key"] for o in listed["Contents"]] == [s3_storage.prefix + key_for("thumb", SHA)]
    head = s3_storage.client.head_object(Bucket=s3_storage.bucket, Key=s3_storage.prefix + key_for("thumb", SHA))
    assert head["ContentType"] == "image/jpeg"


# --- S3 requests --------------------------------------------------------------------------------------


def _record_s3_calls(s3_storage) -> list[tuple[str, dict]]:
    """(operation, HTTP headers) of every request the store's client sends from now on."""
    sent = []

    def before_send(request, **kwargs):
        sent.append((kwargs["event_name"].split(".")[-1], dict(request.headers)))

    s3_storage.client.meta.events.register("before-send.s3", before_send)
    return sent


def test_s3_photo_sized_file_goes_up_in_one_put(s3_storage, tmp_path):
    # One PutObject, no transfer manager (its threads and futures cost more CPU than the PUT itself).
    sent = _record_s3_calls(s3_storage)
    data = os.urandom(300_000)
    s3_storage.put_file(key_for("original", SHA), _source(tmp_path, data))
    assert [op for op, _ in sent] == ["PutObject"]
    with s3_storage.open(key_for("original", SHA)) as stream:
        assert stream.read() == data


def test_s3_requests_carry_no_flexible_checksums(s3_storage, tmp_path):
    # botocore's default CRC32 headers are refused by several S3-compatible stores, and cost CPU for nothing.
    sent = _record_s3_calls(s3_storage)
    s3_storage.put_file(key_for("original", SHA), _source(tmp_path, b"x" * 1000))
    s3_storage.put_bytes(key_for("thumb", SHA), b"y" * 100)
    with s3_storage.open(key_for("thumb", SHA)) as stream:
        assert stream.read() == b"y" * 100
    assert [op for op, _ in sent] == ["PutObject", "PutObject", "GetObject"]
    for _op, headers in sent:
        names = {name.lower() for name in headers}
        assert not any(name.startswith("x-amz-checksum") or name == "x-amz-sdk-checksum-algorithm"
                       or name == "x-amz-checksum-mode" for name in names), names


# --- a photo's three objects --------------------------------------------------------------------------


def test_store_photo_stores_all_three(storage, tmp_path):
    original = os.urandom(50_000)
    sha = hashlib.sha256(original).hexdigest()
    store_photo(storage, sha, _source(tmp_path, original), b"thumb bytes", b"display bytes")
    for variant, data in (("original", original), ("thumb", b"thumb bytes"), ("display", b"display bytes")):
        with storage.open(key_for(variant, sha)) as stream:
            assert stream.read() == data


def test_store_photo_failing_returns_only_when_every_write_is_over(tmp_path, monkeypatch):
    import threading

    store = LocalStorage(tmp_path / "media")
    release = threading.Event()
    real_put_bytes = LocalStorage.put_bytes

    def slow_put_bytes(self, key, data):
        release.wait(5)
        real_put_bytes(self, key, data)

    def failing_put_file(self, key, path):
        release.set()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LocalStorage, "put_bytes", slow_put_bytes)
    monkeypatch.setattr(LocalStorage, "put_file", failing_put_file)
    with pytest.raises(OSError) as failed:
        store_photo(store, SHA, _source(tmp_path, b"orig"), b"t", b"d")
    assert failed.value.errno == 28  # the original's error, not swallowed by the derivatives' success
    # Both derivative writes had finished before store_photo returned: nothing is still writing.
    assert store.exists(key_for("thumb", SHA)) and store.exists(key_for("display", SHA))


def test_store_photo_reports_a_failed_derivative(tmp_path, monkeypatch):
    store = LocalStorage(tmp_path / "media")
    real_put_bytes = LocalStorage.put_bytes

    def put_bytes(self, key, data):
        if key.startswith("display/"):
            raise OSError(28, "No space left on device")
        real_put_bytes(self, key, data)

    monkeypatch.setattr(LocalStorage, "put_bytes", put_bytes)
    with pytest.raises(OSError) as failed:
        store_photo(store, SHA, _source(tmp_path, b"orig"), b"t", b"d")
    assert failed.value.errno == 28
    assert not store.exists(key_for("display", SHA))


# --- configuration ----------------------------------------------------------------------------------


def test_storage_from_config_local(tmp_path):
    store = storage_from_config({"MEDIA_DIR": str(tmp_path)})
    assert isinstance(store, LocalStorage) and store.root == tmp_path
    assert isinstance(storage_from_config({"MEDIA_STORAGE": "local", "MEDIA_DIR": tmp_path}), LocalStorage)
    with pytest.raises(ValueError):
        storage_from_config({"MEDIA_STORAGE": "local", "MEDIA_DIR": ""})


def test_storage_from_config_s3(s3_storage, s3_endpoint, tmp_path):
    config = {
        "MEDIA_STORAGE": "S3", "MEDIA_DIR": "", "S3_BUCKET": s3_storage.bucket, "S3_ENDPOINT_URL": s3_endpoint,
        "S3_REGION": "us-east-1", "S3_ACCESS_KEY_ID": "testing", "S3_SECRET_ACCESS_KEY": "testing",
        "S3_PREFIX": "/from-config/",
    }
    store = storage_from_config(config)
    assert isinstance(store, S3Storage) and store.prefix == "from-config/"
    store.put_file(key_for("thumb", SHA), _source(tmp_path, b"t"))
    assert store.exists(key_for("thumb", SHA))
    store.delete(key_for("thumb", SHA))


def test_storage_from_config_unknown_kind():
    with pytest.raises(ValueError):
        storage_from_config({"MEDIA_STORAGE": "ftp", "MEDIA_DIR": "/tmp"})
    with pytest.raises(ValueError):
        storage_from_config({"MEDIA_STORAGE": "s3", "S3_BUCKET": ""})
