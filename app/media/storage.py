"""Where photo bytes live: one small interface, a local-directory and an S3 implementation.

Objects are content-addressed: every key is built by ``key_for`` from the sha256 of the original, so a
key can never name a path outside the store, and writing the same photo twice writes the same object.
Framework-free (no Flask), so it can be used from scripts and benchmarks.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

VARIANTS = {"original": "", "thumb": ".jpg", "display": ".jpg"}

# Up to this size an S3 original goes up in one PutObject; above it, boto3's transfer manager splits it into
# parts (its own default threshold). One PUT costs ~2 ms of CPU; the transfer manager ~3.7 ms (its threads
# and futures), for every photo.
S3_SINGLE_PUT_MAX = 8 * 1024 * 1024

_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEY = re.compile(r"(original|thumb|display)/[0-9a-f]{2}/[0-9a-f]{2}/([0-9a-f]{64})(?:\.jpg)?")


def key_for(variant: str, sha256: str) -> str:
    """The storage key of one variant of a photo, e.g. ``thumb/ab/cd/<sha256>.jpg``.

    Raises ValueError unless ``variant`` is original, thumb or display and ``sha256`` is 64 lowercase hex.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown photo variant: {variant!r}")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError("not a lowercase hex sha256")
    return f"{variant}/{sha256[:2]}/{sha256[2:4]}/{sha256}{VARIANTS[variant]}"


def stored_variants(display_is_original: bool) -> tuple[str, ...]:
    """The objects a photo row stands for: a clean upload's display copy is its original's object."""
    return ("original", "thumb") if display_is_original else ("original", "thumb", "display")


def check_key(key: str) -> str:
    """``key`` itself if ``key_for`` could have built it. Raises ValueError otherwise (e.g. ``../x``)."""
    match = _KEY.fullmatch(key) if isinstance(key, str) else None
    # Rebuilding it catches a fan-out that disagrees with the hash or a suffix on the wrong variant.
    if not match or key != key_for(match[1], match[2]):
        raise ValueError(f"not a photo storage key: {key!r}")
    return key


def file_sha256(path: str | os.PathLike) -> str:
    """The lowercase hex sha256 of a file's bytes. Raises OSError if it cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@runtime_checkable
class Storage(Protocol):
    """A store of immutable objects named by ``key_for`` keys.

    Every method raises ValueError for a malformed key; ``open`` and ``size`` raise FileNotFoundError for
    a missing object; ``delete`` of a missing object is not an error.
    """

    def exists(self, key: str) -> bool: ...

    def put_file(self, key: str, path: str | os.PathLike) -> None:
        """Store the file at ``path`` under ``key``: the object appears whole or not at all."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, as atomically as ``put_file``."""
        ...

    def open(self, key: str) -> BinaryIO: ...

    def local_path(self, key: str) -> Path | None:
        """The object's file when the store is this machine's disk, so that a download is a ``sendfile`` of
        a file opened fresh (and ``Range`` is answered from it); None for a remote store."""
        ...

    def size(self, key: str) -> int: ...

    def delete(self, key: str) -> None: ...


class LocalStorage:
    """Objects as files under ``root`` (``root/thumb/ab/cd/<sha256>.jpg``)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def put_file(self, key: str, path: str | os.PathLike) -> None:
        """Copy ``path`` in under ``key``. Raises ValueError for a bad key, OSError if the copy fails (then
        nothing is left behind)."""
        self._path(key)  # a bad key is refused before the file is opened
        with open(path, "rb") as src:
            self._write(key, lambda out: shutil.copyfileobj(src, out, 1024 * 1024))

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, atomically as ``put_file`` does."""
        self._write(key, lambda out: out.write(data))

    def _write(self, key: str, fill) -> None:
        """Write the object under ``key`` through ``fill(file)``: beside the target, then rename. os.replace
        within one directory is atomic, so a reader sees the old object or the whole new one, never a
        prefix; a crash leaves only a dot-temp file, a failure nothing."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())  # the data is on disk before the name points at it
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(target.parent)  # and the rename itself survives a power cut

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Storage:
    """Objects in an S3 bucket (AWS, MinIO, Ceph, OSS...), under an optional key prefix."""

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, region: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, prefix: str = "") -> None:
        import boto3  # here, not at module level: a local-only deployment never pays for importing boto3
        from botocore.config import Config

        if not bucket:
            raise ValueError("S3Storage needs a bucket")
        prefix = prefix.strip("/")
        if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
            raise ValueError(f"bad S3 key prefix: {prefix!r}")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        # Self-hosted S3 (MinIO, Ceph) is usually reached by IP or one host name: path-style addressing
        # works there, virtual-host style needs wildcard DNS.
        config = Config(
            s3={"addressing_style": "path"} if endpoint_url else {},
            retries={"max_attempts": 5, "mode": "standard"},
            # botocore >= 1.36 adds a CRC32 to every PutObject and asks for (and checks) one on every GetObject
            # by default. Many S3-compatible stores (older MinIO, Ceph, OSS) refuse or mangle those headers,
            # and it is CPU for nothing: over plain HTTP SigV4 already signs the body's sha256, over HTTPS TLS
            # guards it, and an original's key is its own sha256.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # store_photo() puts three objects at once from each of a worker's threads.
            max_pool_connections=32,
        )
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            config=config,
        )

    def __repr__(self) -> str:
        return f"S3Storage({self.bucket!r}, prefix={self.prefix!r})"

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _head(self, key: str) -> dict:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _is_missing(exc):
                raise FileNotFoundError(key) from exc
            raise

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except FileNotFoundError:
            return False
        return True

    def put_file(self, key: str, path: str | os.PathLike) -> None:
        """Upload ``path`` under ``key``: one PUT up to S3_SINGLE_PUT_MAX bytes, a multipart upload above.
        Either is atomic: the object appears whole or not at all. Raises ValueError for a bad key, OSError if
        ``path`` cannot be read, botocore/boto3 errors if the upload fails."""
        content_type = "image/jpeg" if key.endswith(".jpg") else "application/octet-stream"
        s3_key = self._key(key)
        with open(path, "rb") as body:
            if os.fstat(body.fileno()).st_size <= S3_SINGLE_PUT_MAX:
                self.client.put_object(Bucket=self.bucket, Key=s3_key, Body=body, ContentType=content_type)
                return
        self.client.upload_file(os.fspath(path), self.bucket, s3_key, ExtraArgs={"ContentType": content_type})

    def put_bytes(self, key: str, data: bytes) -> None:
        """One PUT of a small object (a derivative): atomic, no temp file, no transfer manager."""
        content_type = "image/jpeg" if key.endswith(".jpg") else "application/octet-stream"
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)

    def open(self, key: str) -> BinaryIO:
        """The object's body as a readable stream (botocore StreamingBody); close it when done."""
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if _is_missing(exc):
                raise FileNotFoundError(key) from exc
            raise

    def local_path(self, key: str) -> None:
        return None

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def _is_missing(exc: Exception) -> bool:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code")) in ("404", "NoSuchKey", "NotFound")


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="photo-store")
        return _pool


def _forget_pool() -> None:
    # A forked child (a gunicorn worker) inherits the object but none of its threads: start afresh.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def store_photo(store: Storage, sha256: str, original: str | os.PathLike, thumb: bytes,
                display: bytes | None) -> None:
    """Store the three objects of one photo: the file at ``original`` and the two derivatives from memory;
    two when ``display`` is None (the display copy is the original itself).

    The two derivatives go up on a shared pool's threads while the calling thread stores the original, so
    the waits overlap (the local disk's fsyncs, S3's round trips); the CPU is the same as one after the
    other. Returns once all three are stored or have failed, never with a write still
    running; raises the original's error first, else the first derivative's. A failure can leave some of the
    objects stored: harmless, since only the ``Photo`` row, inserted after this, says "complete".
    """
    pool = _executor()
    futures = [pool.submit(store.put_bytes, key_for(variant, sha256), data)
               for variant, data in (("thumb", thumb), ("display", display)) if data is not None]
    try:
        store.put_file(key_for("original", sha256), original)
    finally:
        errors = [f.exception() for f in futures]  # waits for both
    for error in errors:
        if error is not None:
            raise error


def storage_from_config(config: Mapping) -> Storage:
    """The store the config names: MEDIA_STORAGE "local" (default, under MEDIA_DIR) or "s3" (S3_BUCKET,
    S3_ENDPOINT_URL, S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_PREFIX). Raises ValueError for
    an unknown kind or a missing MEDIA_DIR / S3_BUCKET."""
    kind = (config.get("MEDIA_STORAGE") or "local").strip().lower()
    if kind == "local":
        root = config.get("MEDIA_DIR")
        if not root:
            raise ValueError("MEDIA_STORAGE=local needs MEDIA_DIR")
        return LocalStorage(root)
    if kind == "s3":
        return S3Storage(
            config.get("S3_BUCKET") or "",
            endpoint_url=config.get("S3_ENDPOINT_URL") or None,
            region=config.get("S3_REGION") or None,
            access_key=config.get("S3_ACCESS_KEY_ID") or None,
            secret_key=config.get("S3_SECRET_ACCESS_KEY") or None,
            prefix=config.get("S3_PREFIX") or "",
        )
    raise ValueError(f"unknown MEDIA_STORAGE: {kind!r} (expected 'local' or 's3')")
