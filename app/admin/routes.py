"""The audit log of admin actions."""

from __future__ import annotations

from flask_smorest import Blueprint

from app.admin import audit
from app.admin.schemas import AdminEventOut, AdminEventQuery
from app.auth.tokens import auth_required, current_user

blp = Blueprint("admin", __name__, description="Admin console: the audit log of admin actions")


@blp.route("/admin/audit", methods=["GET"])
@blp.arguments(AdminEventQuery, location="query")
@blp.response(200, AdminEventOut(many=True))
@auth_required("admin", "reviewer")
def list_audit(args):
    """Admin actions, newest first: who, when, what changed (reviewers: their township's)."""
    return audit.list_events(current_user, **args)
