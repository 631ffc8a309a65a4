"""``/healthz``: the process answers. ``/readyz``: the database and the photo storage answer too (a load
balancer sends traffic only to ready nodes); its body also warns when the holiday calendar does not know the
next 90 days (the node stays ready: deadlines then fall back to Monday to Friday for the unknown days)."""

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
    body = {"status": "ready" if ready else "not_ready", "checks": checks, "warnings": []}
    if checks["database"] == "ok":
        try:
            from app.cases.deadlines import coverage

            cover = coverage()
            db.session.rollback()
            body["calendar"] = {"covered_until": cover["covered_until"].isoformat() if cover["covered_until"] else None,
                                "days_ahead": cover["days_ahead"], "missing_years": cover["missing_years"]}
            if not cover["ok"]:
                body["warnings"].append({
                    "code": "calendar_not_covered",
                    "detail": f"the holiday calendar has no State Council arrangement for "
                              f"{', '.join(map(str, cover['missing_years']))}: import it (flask calendar import)"})
        except Exception as exc:  # a warning only; never turns a ready node away
            current_app.logger.warning("readyz: calendar: %s", exc)
            db.session.rollback()
    response = jsonify(body)
    response.status_code = 200 if ready else 503
    return response
