"""The pull side of the protocol: what changed for a phone since its cursor (with tombstones for cases
that left its working set or scope), and the held ops that have waited too long for their case."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, exists, or_, select

from app.auth.scope import case_criterion, region_criterion
from app.cases.detail import case_to_dict
from app.cases.models import OPEN_STATES, Case, CasePhoto, CaseScopeExit
from app.database import utcnow
from app.errors import ValidationFailed
from app.extensions import db
from app.regions.models import Region
from app.sync.models import HeldOp
from app.users.models import User


def _working_set(user: User):
    """The cases a phone keeps offline: my tasks and my region's open cases (a volunteer: my reports)."""
    if user.role == "volunteer":
        return Case.reporter_id == user.id
    mine = or_(Case.assignee_id == user.id, Case.reporter_id == user.id)
    if user.role == "admin":
        return or_(mine, Case.state.in_(OPEN_STATES) & (Case.level != "grid"))
    region = getattr(Case, f"{user.region.level}_code") == user.region_code
    return or_(mine, and_(region, Case.state.in_(OPEN_STATES)))


def _scope_exits(user: User, cursor: int, limit: int) -> list:
    """Cases that left the caller's region (moved away) since the cursor and that they no longer see."""
    if user.role in ("admin", "volunteer"):
        return []
    old_scope = getattr(CaseScopeExit, f"{user.region.level}_code") == user.region_code
    still_visible = exists().where(Case.id == CaseScopeExit.case_id, case_criterion(Case, user))
    return db.session.execute(
        select(CaseScopeExit.case_id, CaseScopeExit.change_seq)
        .where(old_scope, CaseScopeExit.change_seq > cursor, ~still_visible)
        .order_by(CaseScopeExit.change_seq).limit(limit + 1)).all()


def _page(rows: list, exits: list) -> list[tuple[int, str, object]]:
    """Changes and exits in change order, each case once (its first change after the cursor)."""
    items = [(row.Case.change_seq, row.Case.id, row) for row in rows] + [(e.change_seq, e.case_id, None) for e in exits]
    items.sort(key=lambda t: (t[0], t[1]))
    seen: set[str] = set()
    page = []
    for seq, case_id, row in items:
        if case_id not in seen:
            seen.add(case_id)
            page.append((seq, case_id, row))
    return page


def _people_and_photos(cases: list[Case]) -> tuple[dict, dict]:
    """Usernames of the cases' reporters and assignees, and each case's photos, one query each."""
    user_ids = {i for c in cases for i in (c.reporter_id, c.assignee_id) if i}
    usernames = dict(db.session.execute(select(User.id, User.username).where(User.id.in_(user_ids))).all()) \
        if user_ids else {}
    photos: dict[str, list[dict]] = {}
    if cases:
        for case_id, sha, role in db.session.execute(
                select(CasePhoto.case_id, CasePhoto.sha256, CasePhoto.role)
                .where(CasePhoto.case_id.in_([c.id for c in cases]))
                .order_by(CasePhoto.case_id, CasePhoto.event_version, CasePhoto.position)).all():
            photos.setdefault(case_id, []).append({"sha256": sha, "role": role})
    return usernames, photos


def changes_since(user: User, cursor: int, limit: int) -> dict:
    """The caller's cases changed since ``cursor``, in change order, with tombstones for cases that left
    the working set or the scope; ``cursor`` of the answer continues from there."""
    rows = db.session.execute(
        select(Case, _working_set(user).label("in_set")).where(case_criterion(Case, user), Case.change_seq > cursor)
        .order_by(Case.change_seq).limit(limit + 1)).all()
    page = _page(rows, _scope_exits(user, cursor, limit))
    has_more = len(page) > limit
    page = page[:limit]
    usernames, photos = _people_and_photos([row.Case for _, _, row in page if row is not None and row.in_set])
    out = []
    for seq, case_id, row in page:
        if row is not None and row.in_set:
            out.append({"seq": seq, "case": case_to_dict(row.Case, usernames, photos.get(case_id, []))})
        else:
            reason = "out_of_scope" if row is None else row.Case.state
            out.append({"seq": seq, "tombstone": {"id": case_id, "reason": reason}})
    next_cursor = page[-1][0] if page else cursor
    return {"changes": out, "cursor": str(next_cursor), "has_more": has_more}


def orphans(user: User, older_than_hours: float | None = None, limit: int = 200) -> list[dict]:
    """Held ops that have waited too long for their case, for reviewers of the senders' regions."""
    hours = older_than_hours if older_than_hours is not None else float(current_app.config["HELD_ORPHAN_HOURS"])
    cutoff = utcnow() - timedelta(hours=hours)
    rows = db.session.execute(
        select(HeldOp, User.username).join(User, HeldOp.user_id == User.id)
        .join(Region, User.region_code == Region.code)
        .where(HeldOp.received_at <= cutoff, region_criterion(Region, user))
        .order_by(HeldOp.received_at).limit(limit)).all()
    return [{"op_id": h.op_id, "case_id": h.case_id, "type": h.type, "username": username,
             "device_id": h.device_id, "seq": h.seq, "received_at": h.received_at.isoformat(),
             "waiting_hours": round((utcnow() - h.received_at).total_seconds() / 3600, 1)}
            for h, username in rows]


def parse_cursor(value: str | None) -> int:
    if value in (None, ""):
        return 0
    if not value.isdigit() or len(value) > 18:
        raise ValidationFailed("invalid_cursor", errors={"cursor": ["not a cursor this server gave out"]})
    return int(value)
