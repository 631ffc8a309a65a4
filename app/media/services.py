"""Photo uploads: check the hash, run the pipeline, store the bytes, record the ``Photo`` row, and re-check
the cases that were waiting for it; and serve the variants to those who may see them.

A photo is named by the sha256 of its bytes, so storing is idempotent: a second upload of a stored hash is a
cheap no-op, and two concurrent uploads of the same bytes leave one row.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

from flask import current_app, has_request_context, request
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.cases import unit_of_work
from app.errors import DomainError, NotFound
from app.extensions import db
from app.media import links
from app.media.models import Photo
from app.media.pipeline import process_photo, sniff_format
from app.media.storage import file_sha256, key_for, storage_from_config, store_photo

log = logging.getLogger(__name__)

VARIANTS = ("thumb", "display", "original")
PRIVILEGED = ("reviewer", "admin")  # may fetch originals (with their EXIF, GPS included)
_HEX = set("0123456789abcdef")


def is_sha256(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


_STORAGE_KEYS = ("MEDIA_STORAGE", "MEDIA_DIR", "S3_BUCKET", "S3_ENDPOINT_URL", "S3_REGION", "S3_ACCESS_KEY_ID",
                 "S3_SECRET_ACCESS_KEY", "S3_PREFIX")


def storage():
    """The app's photo store, made once per process and configuration: an S3 client costs ~0.1 s of CPU to
    build, and boto3 clients are safe to share between threads."""
    key = tuple(current_app.config.get(k) for k in _STORAGE_KEYS)
    cached = current_app.extensions.get("gridcase_storage")
    if cached is None or cached[0] != key:
        cached = (key, storage_from_config(current_app.config))
        current_app.extensions["gridcase_storage"] = cached
    return cached[1]


def tmp_dir() -> str:
    """Where uploads are spooled before they are checked (beside the store, so nothing crosses disks)."""
    path = os.path.join(current_app.config["MEDIA_DIR"], "tmp")
    os.makedirs(path, exist_ok=True)
    return path


def get_photo(sha256: str) -> Photo | None:
    return db.session.get(Photo, sha256) if is_sha256(sha256) else None


def missing(hashes: list[str], user) -> list[str]:
    """Which of ``hashes`` this user has not shown to hold (in the order given, without repeats): what their
    phone should upload. Whether anyone else has sent the same bytes is nobody else's business."""
    return links.not_shown([h for h in hashes if is_sha256(h)], user)


# ---------------------------------------------------------------------------------------------- quota


def _utc_midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def check_quota(user, incoming: int) -> None:
    """Refuse (429 upload_quota, Retry-After until UTC midnight) when ``incoming`` more bytes would take the
    user past MEDIA_DAILY_BYTES_PER_USER today."""
    limit = int(current_app.config["MEDIA_DAILY_BYTES_PER_USER"])
    now = datetime.now(UTC)
    since = _utc_midnight(now)
    used = db.session.scalar(select(func.coalesce(func.sum(Photo.size), 0)).where(
        Photo.uploaded_by == user.id, Photo.stored_at >= since)) or 0
    if int(used) + incoming > limit:
        retry = max(1, int((since + timedelta(days=1) - now).total_seconds()))
        raise DomainError("upload_quota", status=429, headers={"Retry-After": str(retry)})


# ---------------------------------------------------------------------------------------------- storing

_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def _disk_full_is_507():
    """A full disk (or quota) while spooling or storing is 507 ``storage_full``: the phone keeps the photo
    and tries later. Whatever was being written is removed by the writer itself (temp files) or is a
    whole object no row points at yet."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _FULL:
            log.error("media storage is full: %s", exc)
            raise DomainError("storage_full", status=507, headers={"Retry-After": "600"}) from exc
        raise


def _exif_times(value: datetime | None) -> tuple[datetime | None, str | None]:
    """(aware time, raw naive text). A camera that wrote no offset is taken to be on the deployment's
    local time (MEDIA_EXIF_DEFAULT_UTC_OFFSET_HOURS); the text as written is kept beside it."""
    if value is None:
        return None, None
    if value.tzinfo is not None:
        return value.astimezone(UTC), None
    hours = float(current_app.config["MEDIA_EXIF_DEFAULT_UTC_OFFSET_HOURS"])
    return value.replace(tzinfo=timezone(timedelta(hours=hours))).astimezone(UTC), value.isoformat()


def store_upload(tmp_path: str | os.PathLike, claimed_sha256: str | None, user, *,
                 actual_sha256: str | None = None) -> Photo:
    """Store the photo spooled at ``tmp_path``; see ``store_upload_result``."""
    return store_upload_result(tmp_path, claimed_sha256, user, actual_sha256=actual_sha256)[0]


def store_upload_result(tmp_path: str | os.PathLike, claimed_sha256: str | None, user, *,
                        actual_sha256: str | None = None, quota_checked: int = 0) -> tuple[Photo, bool]:
    """Check and store the photo at ``tmp_path`` (the caller removes the file); returns (photo, created).

    ``claimed_sha256`` None means "whatever the bytes hash to" (multipart uploads); ``actual_sha256`` spares
    re-reading a file the caller hashed while spooling it; ``quota_checked`` is how many bytes this request
    has already been checked against the daily quota for (its Content-Length), sparing the same query again
    when the file is no larger. Raises DomainError 422 ``hash_mismatch``, PhotoRejected (422), DomainError
    429 ``upload_quota``. Commits.
    """
    actual = actual_sha256 or file_sha256(tmp_path)
    if claimed_sha256 is not None and actual != claimed_sha256:
        raise DomainError("hash_mismatch", status=422)
    existing = db.session.get(Photo, actual)
    if existing is not None:
        confirm_possession(actual, user)
        return existing, False
    size = os.path.getsize(tmp_path)
    if size > quota_checked:
        check_quota(user, size)
    user_id = user.id
    # End the read transaction before the slow part: on SQLite a write request's transaction holds the
    # database's write lock from its first statement, and decoding a photo takes up to a second.
    db.session.commit()
    from app.ops.metrics import PHOTO_SECONDS

    with PHOTO_SECONDS.time():
        processed = process_photo(tmp_path, max_pixels=int(current_app.config["MEDIA_MAX_PIXELS"]))

    # No object's presence is taken to mean "complete": the row is, inserted only after all its objects are in.
    with _disk_full_is_507():
        store_photo(storage(), actual, tmp_path, processed.thumb,
                    None if processed.display_is_original else processed.display)

    exif_time, exif_naive = _exif_times(processed.exif_time)
    photo = Photo(sha256=actual, size=size, format=processed.format, mime=processed.mime,
                  width=processed.width, height=processed.height, exif_time=exif_time,
                  exif_time_naive=exif_naive, exif_lat=processed.exif_lat, exif_lon=processed.exif_lon,
                  camera=(processed.camera or None) and processed.camera[:64], uploaded_by=user_id,
                  display_is_original=processed.display_is_original)
    photo.set_phash(processed.phash)
    try:
        with db.session.begin_nested():
            db.session.add(photo)
    except IntegrityError:
        # Another upload of the same bytes committed first; its objects are identical to ours.
        db.session.rollback()
        confirm_possession(actual, user)
        return db.session.get(Photo, actual), False
    confirm_possession(actual, user)
    return photo, True


def confirm_possession(sha256: str, user) -> None:
    """``user`` has sent the bytes of this stored photo (their hash checked): record it, attach the links
    they made that were waiting for it, and mark those cases changed, so phones pulling see the photo is no
    longer missing. Commits."""
    uow = unit_of_work.current()
    for case in links.possession_shown(sha256, user, uow.cache):
        uow.touch(case)
    unit_of_work.finish()
    db.session.commit()


class _UploadDeadline:
    """Bounds the time one request body may take to arrive (MEDIA_UPLOAD_TIMEOUT_S).

    gunicorn's gthread worker reads a body with blocking reads and no overall limit, and a read of a chunk
    returns only when the chunk is full: a client sending 10 bytes a second would hold a thread for days.
    At the deadline a timer shuts the connection's read side (``gunicorn.socket``), which ends the blocked
    read at once; the answer (408) still goes out on the write side. Without a server socket (the test
    client) the deadline is checked between chunks only.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._done = False
        self._timer = None
        sock = request.environ.get("gunicorn.socket") if has_request_context() else None
        if sock is not None and seconds > 0:
            self._timer = threading.Timer(seconds, self._cut, args=(sock,))
            self._timer.daemon = True
            self._timer.start()

    def _cut(self, sock) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def check(self) -> None:
        if self.expired or time.monotonic() > self.deadline:
            self.expired = True
            raise DomainError("upload_timeout", status=408, seconds=int(self.seconds))

    def close(self) -> None:
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()


def body_sha256(stream: BinaryIO, *, limit: int, chunk_size: int = 1024 * 1024) -> str:
    """The sha256 of a body read and dropped: a stored photo sent again still proves its sender holds the
    bytes (and reading it keeps the kept-alive connection usable for the phone's next request). Raises
    PayloadTooLarge past ``limit`` bytes, DomainError 408 ``upload_timeout``."""
    from app.errors import PayloadTooLarge

    digest = hashlib.sha256()
    deadline = upload_deadline()
    try:
        read = 0
        while True:
            try:
                chunk = stream.read(chunk_size)
            except Exception:
                deadline.check()
                raise
            deadline.check()
            if not chunk:
                return digest.hexdigest()
            read += len(chunk)
            if read > limit:
                raise PayloadTooLarge()
            digest.update(chunk)
    finally:
        deadline.close()


def upload_deadline() -> _UploadDeadline:
    """The time limit for the body of the current request (MEDIA_UPLOAD_TIMEOUT_S)."""
    return _UploadDeadline(float(current_app.config.get("MEDIA_UPLOAD_TIMEOUT_S", 600)))


def spool(stream: BinaryIO, *, limit: int, chunk_size: int = 1024 * 1024) -> tuple[str, str, int]:
    """Copy ``stream`` to a temp file under MEDIA_DIR/tmp in chunks, hashing as it goes.

    Returns (path, sha256, size); the caller removes the file. Raises PayloadTooLarge past ``limit`` bytes,
    DomainError 408 ``upload_timeout`` when the body takes longer than MEDIA_UPLOAD_TIMEOUT_S, 507
    ``storage_full`` when the disk is full (the partial file is removed in every case).
    """
    from app.errors import PayloadTooLarge

    digest = hashlib.sha256()
    size = 0
    deadline = upload_deadline()
    try:
        with _disk_full_is_507():
            fd, path = tempfile.mkstemp(dir=tmp_dir(), prefix="upload-", suffix=".part")
        try:
            with _disk_full_is_507(), os.fdopen(fd, "wb") as out:
                while True:
                    try:
                        chunk = stream.read(chunk_size)
                    except Exception:
                        deadline.check()  # a read ended by the deadline's cut is a timeout, not a disconnect
                        raise
                    deadline.check()
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge()
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            os.unlink(path)
            raise
    finally:
        deadline.close()
    return path, digest.hexdigest(), size


# ---------------------------------------------------------------------------------------------- serving


def object_variant(photo: Photo, variant: str) -> str:
    """Which stored object holds ``variant`` of ``photo``: the display copy of a clean upload is the
    original's object (the bytes are the same, and carry no metadata)."""
    return "original" if variant == "display" and photo.display_is_original else variant


@dataclass(frozen=True)
class Download:
    """What the GET of one variant sends: a local file (sendfile, ``Range`` from the file) or a remote
    stream, its type, and the name a saved original gets."""

    photo: Photo
    variant: str
    content_type: str
    path: Path | None = None
    stream: BinaryIO | None = None
    size: Callable[[], int] | None = None  # the object's length, asked only when a Range needs it


def open_variant(sha256: str, variant: str, user) -> Download:
    """One variant of a photo, if ``user`` may see it: they sent its bytes, or can see a case the photo is
    attached to (app/media/links.py). Originals only for reviewers and admins. Raises NotFound otherwise
    (never Forbidden: nothing about other townships leaks)."""
    if variant not in VARIANTS or not is_sha256(sha256):
        raise NotFound()
    photo = db.session.get(Photo, sha256)
    if photo is None or not links.can_see(sha256, user):
        raise NotFound()
    if variant == "original" and user.role not in PRIVILEGED:
        raise NotFound()
    store = storage()
    key = key_for(object_variant(photo, variant), sha256)
    try:
        path = store.local_path(key)
        if path is not None:
            kind = "JPEG"  # our own derivative
            if variant == "original":
                # Sniff with a file of its own: a buffered read on the file that is sent would move the
                # descriptor's offset, and gunicorn's sendfile starts from there (the first 4 KiB were lost).
                with open(path, "rb") as fh:
                    kind = sniff_format(fh.read(16))
            return Download(photo, variant, _content_type(photo, variant, kind), path=path)
        stream = store.open(key)
    except FileNotFoundError:
        log.error("photo %s has a row but no %s object", sha256, variant)
        raise NotFound() from None
    # A remote stream cannot be peeked at without reading it: trust the row, written from sniffing at intake.
    return Download(photo, variant, _content_type(photo, variant, photo.format), stream=stream,
                    size=lambda: store.size(key))


def _content_type(photo: Photo, variant: str, kind: str | None) -> str:
    """Derivatives are our own JPEGs; an original is sent as the image type its bytes are, never as
    something a browser would run."""
    if variant != "original":
        return "image/jpeg"
    return photo.mime if kind in ("JPEG", "PNG", "WEBP", "HEIF") else "application/octet-stream"


def photo_dict(photo: Photo) -> dict:
    return {"sha256": photo.sha256, "size": photo.size, "width": photo.width, "height": photo.height,
            "format": photo.format, "mime": photo.mime,
            "exif_time": photo.exif_time.isoformat() if photo.exif_time else None,
            "exif_lat": photo.exif_lat, "exif_lon": photo.exif_lon}
