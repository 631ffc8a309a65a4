"""Record an admin action and list the log under scope. Every admin service calls ``record`` in the same
transaction as the change it describes, so the log never claims what did not happen (nor misses what did)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select

from app.admin.models import AdminEvent
from app.auth.scope import region_criterion
from app.extensions import db
from app.regions.models import Region
from app.users.models import User


def record(actor: User, action: str, target_type: str, target_id: object | None = None, *,
           region_code: str | None = None, summary: str = "", changes: dict | None = None) -> AdminEvent:
    """Add the event to the session (the caller commits it with the change)."""
    event = AdminEvent(actor_id=actor.id, action=action, target_type=target_type,
                       target_id=None if target_id is None else str(target_id), region_code=region_code,
                       summary=summary[:255], changes=changes or {})
    db.session.add(event)
    return event


def diff(before: dict, after: dict) -> dict:
    """``{field: [before, after]}`` for the fields whose value changed."""
    return {key: [before.get(key), after.get(key)] for key in after if before.get(key) != after.get(key)}


def list_events(actor: User, *, action: str | None = None, target_type: str | None = None,
                target_id: str | None = None, before: datetime | None = None, limit: int = 100) -> list[AdminEvent]:
    """Newest first. Admins see every event; reviewers those about their township's people and places."""
    stmt = select(AdminEvent)
    if actor.role != "admin":
        stmt = stmt.join(Region, AdminEvent.region_code == Region.code).where(
            or_(region_criterion(Region, actor), AdminEvent.actor_id == actor.id))
    if action:
        stmt = stmt.where(AdminEvent.action == action)
    if target_type:
        stmt = stmt.where(AdminEvent.target_type == target_type)
    if target_id:
        stmt = stmt.where(AdminEvent.target_id == target_id)
    if before:
        stmt = stmt.where(AdminEvent.at < before)
    return list(db.session.scalars(stmt.order_by(AdminEvent.at.desc(), AdminEvent.id.desc()).limit(limit)))
