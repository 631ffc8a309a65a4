"""What every action on a case starts from: who acts (``Actor``), what it answers (``Outcome``), what
refuses it (``Refused``), the look-ups and checks it shares, and the one way to open a conflict."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from app.auth.scope import case_visible
from app.cases import unit_of_work
from app.cases.models import Case, Category, Conflict
from app.database import utcnow
from app.errors import DomainError, NotFound
from app.extensions import db
from app.regions.models import LEVELS, Region
from app.users.models import User


class Refused(DomainError):
    """An op that can never succeed as sent; the sync answers ``rejected`` with this code."""

    status = 422
    code = "validation_failed"


@dataclass
class Actor:
    """Who does something, from where, and when (server clock; the device's is kept beside it)."""

    user: User | None  # None: the system (scheduled commands)
    device_id: str | None = None
    op_id: str | None = None
    client_time: datetime | None = None
    now: datetime = field(default_factory=utcnow)


@dataclass
class Outcome:
    status: str = "applied"  # applied | conflict
    flags: list[str] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)
    duplicate_of: list[str] = field(default_factory=list)


def start(redirected: bool) -> Outcome:
    return Outcome(flags=["redirected"] if redirected else [])


# ---------------------------------------------------------------------------------------------- look-ups


def get_case(case_id: str, *, lock: bool = False) -> Case | None:
    stmt = select(Case).where(Case.id == case_id)
    if lock:
        stmt = stmt.with_for_update()
    return db.session.scalars(stmt).first()


def follow_merges(case: Case, *, lock: bool = False) -> tuple[Case, bool]:
    """The surviving case a merged one points to (and whether we moved)."""
    moved = False
    seen = {case.id}
    while case.state == "merged" and case.merged_into and case.merged_into not in seen:
        seen.add(case.merged_into)
        target = get_case(case.merged_into, lock=lock)
        if target is None:
            break
        case, moved = target, True
    return case, moved


def require_visible_case(case_id: str, user: User) -> Case:
    case = get_case(case_id)
    if case is None or not case_visible(case, user):
        raise NotFound()
    return case


def case_summary(case: Case) -> dict:
    return {"id": case.id, "number": case.number, "state": case.state, "version": case.version}


_REGION_COLUMNS = ("code", "level", *(f"{level}_code" for level in LEVELS))


def region_row(code: str):
    """A region's code, level and ancestor codes (a plain row: no geometry, no ORM object), or None; read
    once per transaction."""
    cache = unit_of_work.current().cache.setdefault("regions", {})
    if code not in cache:
        t = Region.__table__.c
        cache[code] = db.session.execute(
            select(*(t[name] for name in _REGION_COLUMNS)).where(t.code == code)).first()
    return cache[code]


def category_row(code: str):
    """A category's code, roles and whether it is active (a plain row), or None."""
    cache = unit_of_work.current().cache.setdefault("categories", {})
    if code not in cache:
        if not cache:  # the first look-up of the transaction reads the (small) table whole
            t = Category.__table__.c
            cache.update((row.code, row) for row in db.session.execute(select(t.code, t.roles, t.active)))
        cache.setdefault(code, None)
    return cache[code]


def username(user_id: int | None) -> str | None:
    if user_id is None:
        return None
    return db.session.scalar(select(User.username).where(User.id == user_id))


# ---------------------------------------------------------------------------------------------- checks


def can_edit(user: User, case: Case) -> bool:
    if not case_visible(case, user):
        return False
    if user.role == "volunteer":
        return case.reporter_id == user.id and case.state in ("reported", "returned")
    if user.role == "grid_worker" and case.reporter_id == user.id and case.state in ("reported", "returned"):
        return True
    return user.role in ("grid_worker", "reviewer", "admin") and case.state not in ("closed", "rejected", "merged")


def require_case_for_op(user: User, case: Case) -> None:
    if not case_visible(case, user):
        raise Refused("out_of_scope", status=403)


def require_base_version(case: Case, base_version: int, redirected: bool) -> None:
    """An op cannot be based on a version the server has not reached (a redirected op's base names the
    merged case, not this one)."""
    if base_version > case.version and not redirected:
        raise Refused("base_version_ahead", errors={"base_version": [f"the case is at version {case.version}"]})


# ---------------------------------------------------------------------------------------------- conflicts


def open_conflict(actor: Actor, case: Case, outcome: Outcome, base_version: int, name: str, base, server,
                  client, **extra) -> str:
    """Record that a field (or the state) was changed differently on the server and by this op: a conflict
    row for the reviewers, and its entry in the op's answer. Returns the conflict's id."""
    conflict_id = str(uuid.uuid4())
    unit_of_work.current().add(
        Conflict, id=conflict_id, case_id=case.id, field=name, base=base, server=server, client=client,
        op_id=actor.op_id, device_id=actor.device_id, user_id=actor.user.id, base_version=base_version,
        created_at=actor.now, status="open")
    outcome.status = "conflict"
    outcome.conflicts.append({"field": name, "base": base, "server": server, "client": client,
                              "conflict_id": conflict_id, **extra})
    return conflict_id
