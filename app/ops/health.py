"""``/healthz``: the process answers. ``/readyz``: the database and the photo storage answer too (a load
balancer sends traffic only to ready nodes)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from app.extensions import db

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@blp.get("/readyz")
def readyz():
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log, not the client
        current_app.logger.warning("readyz: database: %s", exc)
        db.session.rollback()
        checks["database"] = "unavailable"
    try:
        from app.media.services import storage

        storage().exists("original/00/00/" + "0" * 64)
        checks["storage"] = "ok"
    except Exception as exc:  # as above
        current_app.logger.warning("readyz: storage: %s", exc)
        checks["storage"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    response = jsonify(status="ready" if ready else "not_ready", checks=checks)
    response.status_code = 200 if ready else 503
    return response
