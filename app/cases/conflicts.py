"""Listing conflicts for the reviewers of a case's region."""

from __future__ import annotations

from sqlalchemy import select

from app.auth.scope import case_criterion
from app.cases.models import Case, Conflict
from app.extensions import db
from app.users.models import User

_FIELDS = ("id", "case_id", "field", "base", "server", "client", "op_id", "device_id", "base_version", "created_at",
           "status", "resolution", "resolved_value", "resolved_at")


def conflict_dict(conflict: Conflict, number: str | None, username: str | None) -> dict:
    return {**{name: getattr(conflict, name) for name in _FIELDS}, "case_number": number, "username": username}


def list_conflicts(user: User, status: str = "open", case_id: str | None = None, limit: int = 200,
                   conflict_id: str | None = None) -> list[dict]:
    """Conflicts on the cases the user may see, oldest first."""
    stmt = (select(Conflict, Case.number, User.username).join(Case, Conflict.case_id == Case.id)
            .join(User, Conflict.user_id == User.id).where(case_criterion(Case, user)))
    if status != "all":
        stmt = stmt.where(Conflict.status == status)
    if case_id:
        stmt = stmt.where(Conflict.case_id == case_id)
    if conflict_id:
        stmt = stmt.where(Conflict.id == conflict_id)
    rows = db.session.execute(stmt.order_by(Conflict.created_at, Conflict.id).limit(limit)).all()
    return [conflict_dict(*row) for row in rows]
