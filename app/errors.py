"""Domain errors and the one problem-JSON shape (RFC 9457) every error leaves the server in.

Services raise the exception classes below; views never build an error body by hand. Each error has a
stable machine ``code``; its human ``detail`` comes from ``MESSAGES`` in the caller's language
(zh-CN by default, English when the request's ``Accept-Language`` prefers it).
"""

from __future__ import annotations

import http
import logging
import re

from flask import Flask, current_app, has_request_context, jsonify, request
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://gridcase.example/problems/"

# code -> (zh-CN, en). Placeholders are filled from the error's ``params``.
MESSAGES: dict[str, tuple[str, str]] = {
    "bad_request": ("请求格式不正确。", "The request is malformed."),
    "invalid_json": ("请求体不是有效的 JSON。", "The request body is not valid JSON."),
    "validation_failed": ("提交的数据未通过校验。", "The submitted data did not pass validation."),
    "unknown_field": ("不允许修改字段：{field}。", "Field may not be changed: {field}."),
    "not_found": ("请求的资源不存在或不在您的权限范围内。", "The resource does not exist or is outside your scope."),
    "method_not_allowed": ("该地址不支持此请求方法。", "This method is not allowed on this address."),
    "payload_too_large": ("请求体超过允许的大小。", "The request body is larger than allowed."),
    "url_too_long": ("请求地址过长。", "The request URL is longer than allowed."),
    "headers_too_large": ("请求头过大或过多。", "The request headers are larger or more than allowed."),
    "range_not_satisfiable": ("请求的字节范围超出了文件大小。", "The requested byte range is outside the file."),
    "too_many_ops": ("一次同步的操作过多（上限 {limit} 条）。", "Too many ops in one sync (limit {limit})."),
    "unsupported_media_type": ("不支持的内容类型。", "Unsupported content type."),
    "rate_limited": ("请求过于频繁，请稍后再试。", "Too many requests; try again later."),
    "unauthorized": ("需要登录。", "Authentication is required."),
    "token_missing": ("缺少访问令牌。", "The access token is missing."),
    "token_invalid": ("令牌无效。", "The token is invalid."),
    "token_expired": ("令牌已过期，请刷新或重新登录。", "The token has expired; refresh it or log in again."),
    "token_revoked": ("令牌已被吊销，请重新登录。", "The token has been revoked; log in again."),
    "token_wrong_type": ("令牌类型不正确。", "Wrong kind of token for this call."),
    "refresh_reused": ("刷新令牌被重复使用，该设备已被吊销。", "A refresh token was reused; the device has been revoked."),
    "invalid_credentials": ("用户名或密码错误。", "Wrong username or password."),
    "user_disabled": ("该账号已停用。", "This account is disabled."),
    "device_revoked": ("该设备已被吊销。", "This device has been revoked."),
    "forbidden": ("您没有执行此操作的权限。", "You may not do this."),
    "out_of_scope": ("对象不在您的管辖范围内。", "The object lies outside your scope."),
    "conflict": ("与服务器上的当前数据冲突。", "Conflicts with the current data on the server."),
    "no_micro_grid": ("该位置不在您辖区内的任何微网格中。", "No micro-grid in your scope holds this point."),
    "category_in_use": ("该类别已被案件使用，不能删除，请停用。", "The category is used by cases; deactivate it instead."),
    "category_exists": ("类别代码已存在。", "A category with this code exists."),
    "calendar_import_failed": ("日历文件有错误，未导入任何内容。", "The calendar file has errors; nothing was imported."),
    "region_import_failed": ("区域文件有错误，未导入任何内容。", "The region file has errors; nothing was imported."),
    "activation_invalid": ("用户名或激活码错误。", "Wrong username or activation code."),
    "activation_expired": ("激活码已过期，请联系管理员重新发放。",
                           "The activation code has expired; ask an admin for a new one."),
    "roster_bad_file": ("花名册须为 CSV 或 XLSX 文件。", "The roster must be a CSV or XLSX file."),
    "roster_too_large": ("花名册文件过大（上限 {limit} 字节）。", "The roster file is too large (limit {limit} bytes)."),
    "roster_no_header": ("花名册缺少表头或必需列：{columns}。", "The roster lacks a header or required columns: {columns}."),
    "roster_too_many_rows": ("花名册行数过多（上限 {limit} 行）。", "The roster has too many rows (limit {limit})."),
    "roster_has_errors": ("花名册有 {count} 行错误，未导入任何人。",
                          "The roster has {count} bad rows; nobody was imported."),
    "person_not_manageable": ("您不能管理该角色或区域的人员。", "You may not manage people of this role or region."),
    "username_taken": ("用户名已被占用。", "The username is taken."),
    "op_id_reused": ("该 op_id 已用于另一内容不同的操作。", "This op_id was already used for a different op."),
    "unknown_op_type": ("未知的操作类型。", "Unknown op type."),
    "unknown_category": ("未知的事件类别。", "Unknown category."),
    "case_exists": ("该编号的事件已存在。", "A case with this id exists already."),
    "base_version_ahead": ("基准版本高于服务器上的版本。", "The base version is ahead of the server's."),
    "transition_not_allowed": ("当前状态下不能执行该操作。", "This action is not possible in the case's state."),
    "device_mismatch": ("设备编号与登录令牌不一致。", "The device id does not match the token's device."),
    "invalid_cursor": ("同步游标无效。", "The sync cursor is not valid."),
    "conflict_resolved": ("该冲突已处理。", "This conflict has been resolved already."),
    "state_conflict_needs_transition": ("状态冲突需通过流转操作处理。", "A state conflict is settled with a transition."),
    "busy": ("服务器繁忙，请稍后重发。", "The server is busy; send it again later."),
    "server_error": ("服务器处理出错，请稍后重发。", "The server failed on this op; send it again later."),
    "tus_version": ("需要 Tus-Resumable: 1.0.0 请求头。", "The Tus-Resumable: 1.0.0 header is required."),
    "tus_bad_length": ("Upload-Length 无效。", "Upload-Length is missing or invalid."),
    "tus_bad_metadata": ("Upload-Metadata 无效。", "Upload-Metadata is invalid."),
    "tus_expired": ("该断点续传已过期，请重新上传。", "This upload has expired; start again."),
    "tus_offset_mismatch": ("Upload-Offset 与服务器不一致，请先查询进度。",
                            "Upload-Offset does not match the server's; ask with HEAD first."),
    "tus_checksum_mismatch": ("分片校验和不一致，请重传该分片。", "The chunk's checksum does not match; send it again."),
    "tus_bad_checksum_algorithm": ("不支持的校验算法（支持 sha256、sha1）。",
                                   "Unsupported checksum algorithm (sha256, sha1)."),
    "tus_chunk_too_long": ("分片超出声明的文件长度。", "The chunk goes past the declared length."),
    "internal_error": ("服务器内部错误，已记录。", "Internal server error; it has been logged."),
    "service_unavailable": ("服务暂时不可用，请稍后重试。", "Service temporarily unavailable; retry later."),
    "photo_empty": ("上传的照片文件为空。", "The uploaded photo file is empty."),
    "photo_unsupported_format": ("不支持的照片格式，请上传 JPEG、PNG、WebP 或 HEIC 照片。",
                                 "Unsupported photo format; upload a JPEG, PNG, WebP or HEIC photo."),
    "photo_corrupt": ("照片文件已损坏或不完整，无法读取。", "The photo file is corrupt or incomplete and cannot be read."),
    "photo_too_large_pixels": ("照片像素过多，超出允许的上限。", "The photo has more pixels than allowed."),
    "hash_mismatch": ("上传内容的 SHA-256 与声明的不一致，请重新上传。",
                      "The uploaded bytes do not match the stated SHA-256; upload them again."),
    "storage_full": ("服务器照片存储空间已满，请稍后重传（照片仍保存在手机上）。",
                     "The server's photo storage is full; upload again later (the photo stays on the phone)."),
    "upload_timeout": ("上传超时（上限 {seconds} 秒），请在网络较好时重传或使用断点续传。",
                       "The upload took too long (limit {seconds} s); send it again on a better network or "
                       "use the resumable upload."),
    "upload_quota": ("今日照片上传量已达上限，请明天再试。",
                     "Today's photo upload allowance is used up; try again tomorrow."),
}


class DomainError(Exception):
    """Base of every error a service raises; the handler turns it into problem JSON."""

    status = 400
    code = "bad_request"

    def __init__(self, code: str | None = None, *, status: int | None = None, errors: dict | None = None,
                 detail: str | None = None, headers: dict | None = None, **params):
        super().__init__(code or self.code)
        if code:
            self.code = code
        if status:
            self.status = status
        self.errors = errors
        self.detail = detail
        self.headers = headers or {}
        self.params = params


class ValidationFailed(DomainError):
    status = 422
    code = "validation_failed"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"


def check_request_head(environ, headers, *, max_url: int, max_header_bytes: int, max_fields: int) -> None:
    """Our limits on the request line and headers, tighter than gunicorn's (gunicorn.conf.py) so that what
    is too large gets our 414 / 431 in JSON, not the server's HTML."""
    url = environ.get("RAW_URI") or environ.get("REQUEST_URI") or (
        environ.get("PATH_INFO", "") + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else ""))
    if len(url) > max_url:
        raise DomainError("url_too_long", status=414, max_bytes=max_url)
    fields = list(headers.items())
    if len(fields) > max_fields or sum(len(k) + len(v) + 4 for k, v in fields) > max_header_bytes:
        raise DomainError("headers_too_large", status=431, max_bytes=max_header_bytes, max_fields=max_fields)


def language() -> str:
    """The caller's language: 'zh' unless the request prefers English."""
    if not has_request_context():
        return "zh"
    best = request.accept_languages.best_match(["zh-CN", "zh", "en", "en-US", "en-GB"], default="zh-CN")
    return "en" if best.startswith("en") else "zh"


def message(code: str, **params) -> str:
    """The human text for ``code`` in the caller's language."""
    zh, en = MESSAGES.get(code, MESSAGES["bad_request"])
    text = en if language() == "en" else zh
    try:
        return text.format(**params)
    except (KeyError, IndexError):
        return text


def problem(status: int, code: str, *, detail: str | None = None, errors: dict | None = None,
            headers: dict | None = None, **params):
    """A problem-JSON response (RFC 9457) with our stable ``code``."""
    from werkzeug.http import HTTP_STATUS_CODES

    body = {
        "type": PROBLEM_BASE + code,
        "title": HTTP_STATUS_CODES.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail or message(code, **params),
    }
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_CONTENT_TYPE
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


# ---------------------------------------------------------------------------------------------- the spec

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemOut(Schema):
    """Every error body (RFC 9457 problem details, built by ``problem()``)."""

    type = fields.String(required=True, metadata={"description": "PROBLEM_BASE + code"})
    title = fields.String(required=True, metadata={"description": "the HTTP status phrase"})
    status = fields.Integer(required=True)
    code = fields.String(required=True, metadata={"description": "stable machine code (see MESSAGES)"})
    detail = fields.String(required=True, metadata={"description": "zh-CN, or English on Accept-Language: en"})
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         metadata={"description": "field path -> messages, when a field is at fault"})


# Headers that always come with an error status (documented, so clients and checks may rely on them).
_PROBLEM_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
    405: {"Allow": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"schema": {"type": "string"}, "required": True,
                          "description": "seconds to wait before trying again"}},
}


def _null_not_any_object(converter, field, ret, **kwargs) -> dict:
    """apispec shows a nullable Nested in OpenAPI 3.0 as ``anyOf: [the schema, {type: object, nullable}]``,
    whose second branch admits ANY object; make it admit null only."""
    any_of = ret.get("anyOf")
    if field.allow_none and isinstance(any_of, list) and {"type": "object", "nullable": True} in any_of:
        return {"anyOf": [{"type": "object", "nullable": True, "enum": [None]}
                          if branch == {"type": "object", "nullable": True} else branch for branch in any_of]}
    return {}


class ProblemApi(Api):
    """flask-smorest's Api, with its shared error responses (one component per HTTP status, named like
    ``http.HTTPStatus``: ``NOT_FOUND``, ``UNPROCESSABLE_ENTITY``…, and ``DEFAULT_ERROR``) documented as
    what the handlers below really send: ``ProblemOut`` as ``application/problem+json``."""

    ERROR_SCHEMA = ProblemOut

    def _init_spec(self, *args, **kwargs):
        super()._init_spec(*args, **kwargs)
        self.ma_plugin.converter.add_attribute_function(_null_not_any_object)

    def _register_responses(self):
        self.spec.components.schema("ProblemOut", schema=ProblemOut)
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = "ProblemOut"
            if status in _PROBLEM_HEADERS:
                response["headers"] = _PROBLEM_HEADERS[status]
            prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Error (problem details, RFC 9457)", "schema": "ProblemOut"}
        prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)


def problem_responses(blp, *statuses: int):
    """Route decorator: document the error statuses a route answers, each with the shared problem response."""

    def decorator(fn):
        for status in statuses:
            fn = blp.alt_response(status, response=http.HTTPStatus(status).name)(fn)
        return fn

    return decorator


# ---------------------------------------------------------------------------------------------- NUL

NUL_MESSAGE = "contains a NUL character (U+0000) or an unpaired surrogate (U+D800-DFFF), which cannot be stored"
# NUL: PostgreSQL text cannot hold it. A lone surrogate ("\ud800" is valid JSON) is no text at all: neither
# database driver can encode it, nor can the answer that echoes it.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(0000|[dD][89a-fA-F])")


def nul_paths(value, prefix: str = "") -> list[str]:
    """The dotted paths of the strings (values or keys) in a JSON value that hold a NUL character or an
    unpaired surrogate."""
    out: list[str] = []
    stack = [(prefix, value)]
    while stack and len(out) < 20:
        path, item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                out.append(path or "_schema")
        elif isinstance(item, dict):
            for key, inner in item.items():
                inner_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and _UNSTORABLE.search(key):
                    out.append(inner_path)
                stack.append((inner_path, inner))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}" if path else str(i), inner) for i, inner in enumerate(item))
    return sorted(out)


def refuse_nul_input(skip_body: bool = False) -> None:
    """Before a request reaches a view: a NUL character in its path, query or JSON/form body is refused
    (404 in the path, 422 elsewhere), since PostgreSQL cannot hold one in text and fails the query (a 500).
    Skipped for a request without credentials on an endpoint that needs them, so that it gets its 401."""
    from flask import request as req

    if req.authorization is None and req.endpoint != "auth.login":
        return
    if "\x00" in req.path:
        raise NotFound()
    errors = {f"query.{key}": [NUL_MESSAGE] for key, value in req.args.items(multi=True)
              if "\x00" in key or "\x00" in value}
    if not skip_body:
        if req.is_json:
            raw = req.get_data(cache=True)
            if _UNSTORABLE_ESCAPE.search(raw):
                try:
                    import json

                    errors.update({path: [NUL_MESSAGE] for path in nul_paths(json.loads(raw))})
                except (ValueError, RecursionError):
                    pass  # not JSON: the route's parser answers that
        elif req.mimetype == "application/x-www-form-urlencoded":
            errors.update({key: [NUL_MESSAGE] for key, value in req.form.items(multi=True)
                           if "\x00" in key or "\x00" in value})
    if errors:
        raise ValidationFailed(errors=errors)


# werkzeug's HTTP errors, mapped onto our codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_failed",
    429: "rate_limited",
    503: "service_unavailable",
}


def _flatten(messages, prefix=""):
    """webargs nests messages by location and field; clients want dotted field paths."""
    out = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                out.update(_flatten(value, path))
            else:
                out[path] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    elif isinstance(messages, list):
        out[prefix or "_schema"] = [str(v) for v in messages]
    return out


def _non_json_body(messages) -> bool:
    """Whether a body the schema expected as JSON came with another content type."""
    return (has_request_context() and isinstance(messages, dict) and "json" in messages
            and bool(request.mimetype) and not request.is_json)


def _validation_errors(messages) -> dict:
    """webargs keys the messages by location ("json", "query"); a body field is named without it."""
    if isinstance(messages, dict) and set(messages) <= {"json", "query", "form", "files", "headers"}:
        merged = {}
        for location, fields in messages.items():
            merged.update(_flatten(fields, "" if location == "json" else location))
        return merged
    return _flatten(messages)


def _bad_json(exc: HTTPException) -> bool:
    """A 400 from webargs or werkzeug because the body is not JSON (or not UTF-8)."""
    return isinstance(getattr(exc, "exc", None), ValueError) or (
        isinstance(exc.description, str) and "JSON" in exc.description)


def _http_headers(exc: HTTPException, status: int) -> dict:
    """The headers a status needs: Allow (405), Content-Range (416), Retry-After (429)."""
    if status == 405 and getattr(exc, "valid_methods", None):
        return {"Allow": ", ".join(exc.valid_methods)}
    if status == 416 and getattr(exc, "length", None) is not None:
        return {"Content-Range": f"{exc.units} */{exc.length}"}  # how long the object is (RFC 9110 15.5.17)
    if status == 429:
        return {"Retry-After": str(getattr(exc, "retry_after", None) or 60)}
    return {}


def handle_http_exception(exc: HTTPException):
    status = exc.code or 500
    if status >= 500 and status not in _HTTP_CODES:
        return handle_unexpected(exc)
    code = _HTTP_CODES.get(status, "bad_request")
    errors = None
    messages = (getattr(exc, "data", None) or {}).get("messages") if status == 422 else None
    if messages is not None and _non_json_body(messages):
        # webargs reads a JSON body only when it is labelled JSON; a form or text body would otherwise be
        # answered with "missing field" for every field.
        return problem(415, "unsupported_media_type")
    if messages is not None:
        errors = _validation_errors(messages)
    elif status == 400 and _bad_json(exc):
        code = "invalid_json"
    return problem(status, code, errors=errors, headers=_http_headers(exc, status))


def handle_domain_error(exc: DomainError):
    return problem(exc.status, exc.code, detail=exc.detail, errors=exc.errors, headers=exc.headers,
                   **exc.params)




def handle_unexpected(exc: Exception):
    import errno


    db = current_app.extensions["sqlalchemy"]  # (app.extensions imports this module: no import back)

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        # A full disk wherever it strikes (spooling, the tus part files): a clear 507, not a bare 500.
        try:
            db.session.rollback()
        except Exception:  # noqa: BLE001
            log.exception("rollback after a full disk failed")
        log.error("disk full: %s", exc)
        return problem(507, "storage_full", headers={"Retry-After": "600"})
    try:
        db.session.rollback()
    except Exception:  # the session may itself be what broke; the 500 must still go out
        log.exception("rollback after an unexpected error failed")
    from limits.errors import StorageError

    if isinstance(exc, StorageError):
        # The shared rate-limit store (Redis) did not answer: not now, not broken. The DB store's errors are
        # the database's own and are judged below.
        log.warning("rate-limit storage unavailable: %s", exc.storage_error)
        return problem(503, "service_unavailable", headers={"Retry-After": "5"})
    from app.database import transient_error

    if transient_error(exc):
        # The database was not there for a moment (a lost or refused connection, a restart, a deadlock or
        # serialization failure outside the sync's own retries): nothing was committed; the phone keeps its
        # outbox and sends again. A 503 says so; a 500 would say the server is broken.
        log.warning("database unavailable: %s", exc, exc_info=exc)
        return problem(503, "service_unavailable", headers={"Retry-After": "5"})
    log.exception("unexpected error", exc_info=exc)
    if current_app.config.get("PROPAGATE_EXCEPTIONS_IN_TESTS"):
        raise exc
    return problem(500, "internal_error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(Exception, handle_unexpected)
