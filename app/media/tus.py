"""Resumable uploads: tus 1.0.0 at ``/api/v1/uploads/`` for large photos over weak networks.

Extensions: creation, checksum (sha256, sha1), termination, expiration. The bytes received so far live in
``MEDIA_DIR/tus/<id>.part``; the file's size is the upload's offset, so a server killed mid-chunk loses at
most that chunk and the phone resumes from what ``HEAD`` reports. A chunk that carries ``Upload-Checksum``
is written aside first and appended only when it matches (460 otherwise). When the last byte arrives the
file goes through the same pipeline and store as every other upload path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from flask import Response, current_app, jsonify, request
from flask_smorest import Blueprint
from sqlalchemy import select

from app.auth.tokens import auth_required, current_user
from app.database import utcnow
from app.errors import DomainError, NotFound, PayloadTooLarge, problem
from app.extensions import db, limiter
from app.media import services
from app.media.models import Upload
from app.ops.security import device_key, limit, user_key

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,checksum,termination,expiration"
ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}
CHUNK = 64 * 1024

blp = Blueprint("tus", __name__, description="tus 1.0.0 resumable uploads: the protocol speaks headers "
                "(https://tus.io/protocols/resumable-upload); a finished upload answers the photo as PUT does")


def _header(name: str, description: str, *, required: bool = True, pattern: str | None = None) -> dict:
    schema = {"type": "string", **({"pattern": pattern} if pattern else {})}
    return {"in": "header", "name": name, "required": required, "description": description, "schema": schema}


def _answer(description: str, *headers: str, body: bool = False) -> dict:
    answer = {"description": description,
              "headers": {name: {"schema": {"type": "string"}} for name in ("Tus-Resumable", *headers)}}
    if body:
        answer["content"] = {"application/json": {"schema": {"type": "object"}}}
    return answer


TUS_RESUMABLE = _header("Tus-Resumable", "the protocol version: 1.0.0", pattern="^1\\.0\\.0$")
OFFSET = _header("Upload-Offset", "where this chunk starts: the offset HEAD reported", pattern="^[0-9]{1,12}$")
# Statuses tus itself defines beside ours: 412 (version), 460 (checksum mismatch, from the checksum extension).
PROBLEM = {"$ref": "#/components/responses/DEFAULT_ERROR"}


class TusError(DomainError):
    pass


class ChunkTooLong(Exception):
    """A chunk (sent without Content-Length) ran past Upload-Length: what it appended is taken back."""


def _headers(extra: dict | None = None) -> dict:
    headers = {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store"}
    headers.update(extra or {})
    return headers


def _dir() -> Path:
    path = Path(current_app.config["MEDIA_DIR"]) / "tus"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _part(upload_id: str) -> Path:
    return _dir() / f"{upload_id}.part"


def _expiry() -> timedelta:
    return timedelta(hours=float(current_app.config["TUS_EXPIRE_HOURS"]))


def _http_date(when: datetime) -> str:
    from email.utils import format_datetime

    return format_datetime(when, usegmt=True)


@blp.before_request
def _check_version():
    if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != TUS_VERSION:
        return problem(412, "tus_version", headers=_headers({"Tus-Version": TUS_VERSION}))
    return None


@blp.after_request
def _always_tus(response):
    response.headers.setdefault("Tus-Resumable", TUS_VERSION)
    if not response.is_streamed and not response.get_data():
        response.headers.pop("Content-Type", None)  # no body, no type (Flask would say text/html)
    return response


@blp.route("/uploads/", methods=["OPTIONS"])
@blp.doc(responses={"204": _answer("the server's tus version, extensions, size limit and checksum algorithms",
                                   "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm")},
         security=[])
def options():
    return Response(status=204, headers=_headers({
        "Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS,
        "Tus-Max-Size": str(current_app.config["MEDIA_MAX_BYTES"]),
        "Tus-Checksum-Algorithm": ",".join(ALGORITHMS)}))


def _parse_metadata(value: str | None) -> dict:
    meta = {}
    for pair in (value or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, encoded = pair.partition(" ")
        try:
            meta[key] = base64.b64decode(encoded, validate=True).decode("utf-8") if encoded else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise TusError("tus_bad_metadata", status=400) from exc
    return meta


def expire_stale(now: datetime | None = None) -> int:
    """Remove partial uploads past their expiry (their files and rows)."""
    now = now or utcnow()
    stale = list(db.session.scalars(select(Upload).where(Upload.expires_at <= now)))
    for upload in stale:
        _part(upload.id).unlink(missing_ok=True)
        db.session.delete(upload)
    return len(stale)


@blp.route("/uploads/", methods=["POST"])
@limiter.limit(limit("UPLOAD_RATE_LIMIT_DEVICE"), key_func=device_key)
@limiter.limit(limit("UPLOAD_RATE_LIMIT_USER"), key_func=user_key)
@blp.doc(parameters=[TUS_RESUMABLE, _header("Upload-Length", "the whole file's size in bytes", pattern="^[1-9][0-9]{0,11}$"),
                     _header("Upload-Metadata", "comma-separated `key base64(value)` pairs: sha256, filename",
                             required=False)],
         responses={"201": _answer("created: PATCH the bytes to Location", "Location", "Upload-Expires"),
                    **{str(s): PROBLEM for s in (400, 401, 412, 413, 422, 429)}})
@auth_required()
def create():
    """Creation: ``Upload-Length`` and ``Upload-Metadata`` (``sha256`` of the whole file, ``filename``)."""
    expire_stale()
    raw_length = request.headers.get("Upload-Length", "")
    if not raw_length.isdigit():
        raise TusError("tus_bad_length", status=400)
    length = int(raw_length)
    if length > int(current_app.config["MEDIA_MAX_BYTES"]):
        raise PayloadTooLarge()
    if length == 0:
        raise TusError("photo_empty", status=422)
    meta = _parse_metadata(request.headers.get("Upload-Metadata"))
    if "sha256" in meta and not services.is_sha256(meta["sha256"]):
        raise TusError("tus_bad_metadata", status=400)
    services.check_quota(current_user, length)
    now = utcnow()
    upload = Upload(id=uuid.uuid4().hex, user_id=current_user.id, length=length, meta=meta, created_at=now,
                    expires_at=now + _expiry())
    db.session.add(upload)
    db.session.commit()
    _part(upload.id).touch()
    return Response(status=201, headers=_headers({
        "Location": f"{request.url_root.rstrip('/')}/api/v1/uploads/{upload.id}",
        "Upload-Expires": _http_date(upload.expires_at)}))


def _owned(upload_id: str) -> Upload:
    upload = db.session.get(Upload, upload_id) if len(upload_id) == 32 else None
    if upload is None or upload.user_id != current_user.id:
        raise NotFound()
    if upload.expires_at <= utcnow():
        _part(upload.id).unlink(missing_ok=True)
        db.session.delete(upload)
        db.session.commit()
        raise TusError("tus_expired", status=410)
    return upload


def _offset(upload: Upload) -> int:
    try:
        return _part(upload.id).stat().st_size
    except FileNotFoundError:
        return 0


@blp.route("/uploads/<upload_id>", methods=["HEAD"])
@blp.doc(parameters=[TUS_RESUMABLE],
         responses={"200": _answer("how far the upload is", "Upload-Offset", "Upload-Length", "Upload-Expires"),
                    **{str(s): {"description": "no body (HEAD)"} for s in (401, 404, 410, 412)}})
@auth_required()
def head(upload_id: str):
    """How much the server has: resume from ``Upload-Offset``."""
    upload = _owned(upload_id)
    return Response(status=200, headers=_headers({
        "Upload-Offset": str(_offset(upload)), "Upload-Length": str(upload.length),
        "Upload-Expires": _http_date(upload.expires_at)}))


def _checksum() -> tuple[str, bytes] | None:
    value = request.headers.get("Upload-Checksum")
    if not value:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    if algorithm not in ALGORITHMS:
        raise TusError("tus_bad_checksum_algorithm", status=400)
    try:
        return algorithm, base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise TusError("tus_bad_checksum_algorithm", status=400) from exc


@blp.route("/uploads/<upload_id>", methods=["PATCH"])
@limiter.limit(limit("UPLOAD_RATE_LIMIT_DEVICE"), key_func=device_key)
@limiter.limit(limit("UPLOAD_RATE_LIMIT_USER"), key_func=user_key)
@blp.doc(parameters=[TUS_RESUMABLE, OFFSET,
                     _header("Upload-Checksum", "`sha256 base64(digest)` (or sha1) of this chunk", required=False)],
         requestBody={"required": True, "content": {"application/offset+octet-stream": {
             "schema": {"type": "string", "format": "binary"}}}},
         responses={"204": _answer("chunk stored; more to come", "Upload-Offset"),
                    "200": _answer("the last chunk: the photo, as PUT /media/{sha256} answers it", "Upload-Offset",
                                   body=True),
                    "460": {**PROBLEM, "description": "the chunk's checksum does not match: send it again"},
                    **{str(s): PROBLEM for s in (400, 401, 404, 409, 410, 412, 413, 415, 422, 429)}})
@auth_required()
def patch(upload_id: str):
    """Append a chunk at ``Upload-Offset``; the last chunk stores the photo (answer with its metadata)."""
    if request.mimetype != "application/offset+octet-stream":
        raise TusError("unsupported_media_type", status=415)
    upload = _owned(upload_id)
    claimed_offset = request.headers.get("Upload-Offset", "")
    offset = _offset(upload)
    if not claimed_offset.isdigit() or int(claimed_offset) != offset:
        return problem(409, "tus_offset_mismatch", headers=_headers({"Upload-Offset": str(offset)}))
    room = upload.length - offset
    declared = request.content_length
    if declared is not None and declared > room:  # refused before a byte is read: the offset stays
        return problem(413, "tus_chunk_too_long", headers=_headers({"Upload-Offset": str(offset)}))
    checksum = _checksum()
    length, upload_id, meta, user = upload.length, upload.id, dict(upload.meta or {}), current_user._get_current_object()
    db.session.commit()  # no transaction (nor SQLite's write lock) while the chunk trickles in
    part = _part(upload_id)
    deadline = services.upload_deadline()
    try:
        received = _receive(part, checksum, room, deadline)
    except ChunkTooLong:
        return problem(413, "tus_chunk_too_long", headers=_headers({"Upload-Offset": str(offset)}))
    finally:
        deadline.close()
    if received is None:
        return problem(460, "tus_checksum_mismatch", headers=_headers({"Upload-Offset": str(offset)}))
    new_offset = offset + received
    headers = _headers({"Upload-Offset": str(new_offset)})
    if new_offset < length:
        return Response(status=204, headers=headers)
    try:
        photo, _created = services.store_upload_result(part, meta.get("sha256"), user)
    finally:
        part.unlink(missing_ok=True)
        finished = db.session.get(Upload, upload_id)
        if finished is not None:
            db.session.delete(finished)
        db.session.commit()
    response = jsonify(services.photo_dict(photo))
    response.status_code = 200
    response.headers.update(headers)
    return response


def _chunks(deadline):
    """The request body in chunks, within the upload time limit (a trickling phone cannot hold a thread)."""
    while True:
        try:
            chunk = request.stream.read(CHUNK)
        except Exception:
            deadline.check()  # a read ended by the deadline's cut is a timeout, not a disconnect
            raise
        deadline.check()
        if not chunk:
            return
        yield chunk


def _receive(part: Path, checksum, room: int, deadline) -> int | None:
    """Append this PATCH's bytes to the upload; the count, or None when its checksum did not match. A
    chunk with a checksum is written aside first and appended only when it matches."""
    received = 0
    if checksum is None:
        with part.open("ab") as out:
            start = out.tell()
            try:
                for chunk in _chunks(deadline):
                    received += len(chunk)
                    if received > room:
                        out.truncate(start)  # refused whole, never cut: the offset stays where it was
                        raise ChunkTooLong()
                    out.write(chunk)
            finally:  # what arrived before a cut stays: the phone resumes from it
                out.flush()
                os.fsync(out.fileno())
        return received
    algorithm, expected = checksum
    digest = ALGORITHMS[algorithm]()
    aside = part.with_suffix(".chunk")
    try:
        with aside.open("wb") as out:
            for chunk in _chunks(deadline):
                received += len(chunk)
                if received > room:
                    raise ChunkTooLong()
                digest.update(chunk)
                out.write(chunk)
        if digest.digest() != expected:
            return None
        with part.open("ab") as out, aside.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        return received
    finally:
        aside.unlink(missing_ok=True)


@blp.route("/uploads/<upload_id>", methods=["DELETE"])
@blp.doc(parameters=[TUS_RESUMABLE], responses={"204": _answer("the partial upload is gone"),
                                                **{str(s): PROBLEM for s in (401, 404, 410, 412)}})
@auth_required()
def terminate(upload_id: str):
    """Termination: the phone gave up; the partial file goes."""
    upload = _owned(upload_id)
    _part(upload.id).unlink(missing_ok=True)
    _part(upload.id).with_suffix(".chunk").unlink(missing_ok=True)
    db.session.delete(upload)
    db.session.commit()
    return Response(status=204, headers=_headers())
