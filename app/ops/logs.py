"""Structured logs: one JSON object a line, each carrying the request id (from ``X-Request-ID`` when a
proxy set one, else made here) so a phone's complaint, nginx's access log and ours can be joined."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from flask import Flask, g, has_request_context, request
from sqlalchemy import inspect as orm_state

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
                 "msg": record.getMessage()}
        if has_request_context():
            entry["request_id"] = g.get("request_id")
            entry["method"] = request.method
            entry["path"] = request.path
        for key in ("status", "duration_ms", "cpu_ms", "user_id", "endpoint"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(app: Flask) -> None:
    if app.config.get("LOG_FORMAT", "json") != "json" or app.testing:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(app.config.get("LOG_LEVEL", "INFO"))
    app.logger.handlers[:] = []
    app.logger.propagate = True


def register(app: Flask) -> None:
    configure_logging(app)
    access = logging.getLogger("gridcase.access")

    @app.before_request
    def _request_id():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()
        g.request_cpu_started = time.thread_time()

    @app.after_request
    def _log_and_tag(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        duration = (time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000
        # CPU of the serving thread: a request slow with little CPU waited (database, storage, the GIL).
        cpu = (time.thread_time() - g.get("request_cpu_started", time.thread_time())) * 1000
        access.info("request", extra={"status": response.status_code, "duration_ms": round(duration, 1),
                                      "cpu_ms": round(cpu, 1), "endpoint": request.endpoint,
                                      "user_id": _user_id()})
        return response


def _user_id() -> int | None:
    """The request's user id, from the ORM's identity key: the user object has usually been expired by a
    commit, and reading ``.id`` from it would cost a SELECT per request just for the log line."""
    loaded = g.get("_jwt_extended_jwt_user", {}) or {}
    user = loaded.get("loaded_user") if isinstance(loaded, dict) else None
    state = orm_state(user, raiseerr=False) if user is not None else None
    if state is not None and state.identity:
        return state.identity[0]
    return getattr(user, "id", None)
