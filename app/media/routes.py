"""Photo upload and download: which hashes are missing, PUT by hash, multipart POST (WeChat ``wx.uploadFile``),
and scope-checked GET of the thumbnail, display copy or original."""

from __future__ import annotations

import os

from flask import current_app, jsonify, request, send_file
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.auth.tokens import auth_required, current_user
from app.errors import DomainError, NotFound, PayloadTooLarge, ValidationFailed, problem_responses
from app.extensions import db, limiter
from app.media import services
from app.ops.security import device_key, limit, user_key

blp = Blueprint("media", __name__, description="Photos, by the sha256 of their bytes")

SHA256_PATTERN = r"^[0-9a-f]{64}$"
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}


class MissingIn(Schema):
    hashes = fields.List(fields.String(validate=validate.Regexp(SHA256_PATTERN)), required=True,
                         validate=validate.Length(max=200))


class MissingOut(Schema):
    missing = fields.List(fields.String())


@blp.route("/media/missing", methods=["POST"])
@blp.arguments(MissingIn)
@blp.response(200, MissingOut)
@auth_required()
def missing(args):
    """Which of these photo hashes the caller has not shown to hold yet (upload those): the answer is about
    this user, never about what others have sent."""
    return {"missing": services.missing(args["hashes"], current_user)}


_PHOTO_STORED = {"type": "object", "properties": {
    "sha256": {"type": "string"}, "stored": {"type": "boolean"}, "size": {"type": "integer"},
    "width": {"type": "integer", "nullable": True}, "height": {"type": "integer", "nullable": True},
    "format": {"type": "string", "nullable": True}, "mime": {"type": "string", "nullable": True},
    "exif_time": {"type": "string", "nullable": True}, "exif_lat": {"type": "number", "nullable": True},
    "exif_lon": {"type": "number", "nullable": True}}}
_STORED_RESPONSES = {
    "200": {"description": "the server had this photo already",
            "content": {"application/json": {"schema": _PHOTO_STORED}}},
    "201": {"description": "stored now", "content": {"application/json": {"schema": _PHOTO_STORED}}},
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _limit() -> int:
    return int(current_app.config["MEDIA_MAX_BYTES"])


def _check_declared_length() -> None:
    """Refuse by Content-Length before reading a byte (the spooler enforces the limit again)."""
    if request.content_length is not None and request.content_length > _limit():
        raise PayloadTooLarge()


def _release_transaction() -> None:
    # Nothing to write yet: end the transaction the token check opened, so that a slow upload over a weak
    # network does not hold SQLite's write lock (or a PostgreSQL connection in a transaction) while it trickles in.
    db.session.commit()


def _stored(photo, created: bool):
    response = jsonify(services.photo_dict(photo))
    response.status_code = 201 if created else 200
    return response


@blp.route("/media/<sha256>", methods=["PUT"])
@blp.doc(requestBody={"required": True, "content": {"application/octet-stream": _BINARY, "image/*": _BINARY}},
         responses=_STORED_RESPONSES)
@problem_responses(blp, 401, 404, 413, 422, 429)
@limiter.limit(limit("UPLOAD_RATE_LIMIT_DEVICE"), key_func=device_key)
@limiter.limit(limit("UPLOAD_RATE_LIMIT_USER"), key_func=user_key)
@auth_required()
def put_photo(sha256: str):
    """Upload one photo as the raw request body; the server checks that its sha256 is the one named, also
    when it stores the photo already (the upload is what attaches it to the sender's cases)."""
    if not services.is_sha256(sha256):
        raise NotFound()
    _check_declared_length()
    if services.get_photo(sha256) is not None:
        # Stored already (a phone resending after a lost answer, or someone else's copy): nothing to
        # process, but the body must hash to the name, or naming a hash would be enough to claim a photo.
        _release_transaction()
        if services.body_sha256(request.stream, limit=_limit()) != sha256:
            raise DomainError("hash_mismatch", status=422)
        services.confirm_possession(sha256, current_user)
        return jsonify({"sha256": sha256, "stored": True}), 200
    if request.content_length:
        services.check_quota(current_user, request.content_length)
    _release_transaction()
    path, actual, _size = services.spool(request.stream, limit=_limit())
    try:
        photo, created = services.store_upload_result(path, sha256, current_user, actual_sha256=actual,
                                                      quota_checked=request.content_length or 0)
    finally:
        os.unlink(path)
    return _stored(photo, created)


@blp.route("/media", methods=["POST"])
@blp.doc(requestBody={"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"}}}}}},
    responses=_STORED_RESPONSES)
@problem_responses(blp, 401, 413, 415, 422, 429)
@limiter.limit(limit("UPLOAD_RATE_LIMIT_DEVICE"), key_func=device_key)
@limiter.limit(limit("UPLOAD_RATE_LIMIT_USER"), key_func=user_key)
@auth_required()
def post_photo():
    """Upload one photo as multipart/form-data (the first file field, whatever its name)."""
    _check_declared_length()
    if request.content_length:
        services.check_quota(current_user, request.content_length)
    _release_transaction()
    if request.mimetype != "multipart/form-data":
        raise ValidationFailed("unsupported_media_type", status=415)
    # Werkzeug parses the form itself; cap what it will accept at our limit (plus the form's own overhead).
    request.max_content_length = _limit() + 64 * 1024
    upload = next(iter(request.files.values()), None)
    if upload is None:
        raise ValidationFailed("photo_empty")
    path, actual, _size = services.spool(upload.stream, limit=_limit())
    try:
        photo, created = services.store_upload_result(path, None, current_user, actual_sha256=actual,
                                                      quota_checked=request.content_length or 0)
    finally:
        os.unlink(path)
    return _stored(photo, created)


@blp.route("/media/<sha256>", methods=["GET"])
@blp.doc(parameters=[{"in": "query", "name": "variant", "required": False,
                      "schema": {"type": "string", "enum": ["thumb", "display", "original"], "default": "display"}}],
         responses={"200": {"description": "the photo's bytes", "content": {
             "image/jpeg": _BINARY, "image/png": _BINARY, "image/webp": _BINARY, "image/heic": _BINARY,
             "image/heif": _BINARY}},
             "206": {"description": "the requested byte range (Range, If-Range)"},
             "304": {"description": "not modified (If-None-Match)"},
             "416": {"description": "the range is outside the object"}})
@problem_responses(blp, 401, 404, 422)
@auth_required()
def get_photo(sha256: str):
    """One variant of a photo (``?variant=thumb|display|original``, display by default); originals carry the
    camera's EXIF, GPS included, and go to reviewers and admins only."""
    variant = request.args.get("variant", "display")
    if variant not in services.VARIANTS:
        raise ValidationFailed(errors={"query.variant": ["Must be one of: thumb, display, original."]})
    etag = f"{sha256}-{variant}"  # the hash names the bytes: the perfect ETag, never weak
    download = services.open_variant(sha256, variant, current_user)
    headers = {"Cache-Control": "private, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"}
    if request.if_none_match.contains(etag):
        if download.stream is not None:
            download.stream.close()
        response = current_app.response_class(status=304, headers={"ETag": f'"{etag}"', **headers})
        return response
    if variant == "original":
        name = f"{sha256}-original.{_EXTENSIONS.get(download.photo.format, 'bin')}"
    else:
        name = f"{sha256}-{variant}.jpg"
    options = {"mimetype": download.content_type, "as_attachment": variant == "original", "download_name": name,
               "etag": etag, "max_age": None}
    if download.path is not None:
        # A fresh file: werkzeug answers Range / If-Range from it and gunicorn sendfiles it from offset 0.
        response = send_file(download.path, conditional=True, **options)
    else:
        response = send_file(download.stream, conditional=False, **options)
        # A remote stream: Range is answered by reading past the skipped bytes server-side (the store is
        # near; the slow link is the reviewer's).
        size = download.size() if request.range is not None else None
        response.make_conditional(request, accept_ranges=True, complete_length=size)
    response.headers.update(headers)
    return response
