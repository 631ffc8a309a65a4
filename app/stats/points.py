"""Volunteer points (积分制): a volunteer's report earns points when a reviewer accepts it, by its colour;
if it is later merged into another case or rejected, a reversal takes them back, so it earns none.

The points live in a ledger (``points_ledger``): every figure is a SUM, every change has a reason. The
table of points by colour is a module constant (``POINTS_BY_RISK``); making it a setting is the config
owner's call. Only reports by volunteers earn points: grid workers report as their job.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy import case as sql_case

from app.auth.scope import subtree_criterion
from app.cases import hooks
from app.cases.models import Case, PointsEntry
from app.extensions import db
from app.regions.models import Region
from app.users.models import User

POINTS_BY_RISK = {"red": 10, "yellow": 5, "blue": 2}
EARNING_ROLES = ("volunteer",)
EARN = "accepted"
# The transitions that take the points of an accepted report back, and the ledger reason they leave.
REVERSALS = {"merge": "merged", "reject": "rejected"}


def _balance(user_id: int, case_id: str) -> int:
    return db.session.scalar(select(func.coalesce(func.sum(PointsEntry.points), 0)).where(
        PointsEntry.user_id == user_id, PointsEntry.case_id == case_id)) or 0


def _earned_before(user_id: int, case_id: str) -> bool:
    return db.session.scalar(select(func.count(PointsEntry.id)).where(
        PointsEntry.user_id == user_id, PointsEntry.case_id == case_id, PointsEntry.reason == EARN)) > 0


def on_transition(actor, case: Case, row, changes: dict, data: dict) -> None:
    """Effect hook: accept earns the reporter points by colour (once per case, even when the case is
    returned and accepted again); merge or reject takes back whatever the case still holds."""
    if row.action != "accept" and row.action not in REVERSALS:
        return
    reporter = db.session.get(User, case.reporter_id)
    if reporter is None or reporter.role not in EARNING_ROLES:
        return
    if row.action == "accept":
        if _earned_before(reporter.id, case.id):
            return
        points = POINTS_BY_RISK.get(case.risk_level, 0)
        reason = EARN
    else:
        held = _balance(reporter.id, case.id)
        if held <= 0:
            return  # never accepted: it never earned any
        points = -held
        reason = REVERSALS[row.action]
    db.session.add(PointsEntry(user_id=reporter.id, case_id=case.id, points=points, reason=reason, at=actor.now))
    data["points"] = {"user": reporter.username, "points": points, "reason": reason}


def register(app) -> None:
    """Wired by the app factory: the workflow's point effects (app/cases/workflow.py) run ``on_transition``."""
    hooks.on_effects(("awards_points", "takes_back_points"), on_transition)


# ---------------------------------------------------------------------------------------------- reading


def _confirmed_expr():
    """+1 for a report accepted in the period, -1 for one taken back in it."""
    return sql_case((PointsEntry.reason == EARN, 1), (PointsEntry.reason.in_(tuple(REVERSALS.values())), -1),
                    else_=0)


def own_points(user: User, start: datetime, end: datetime, limit: int) -> dict:
    """A volunteer's points: in the period, all time, and the period's ledger entries (newest first)."""
    period = and_(PointsEntry.user_id == user.id, PointsEntry.at >= start, PointsEntry.at < end)
    points, confirmed = db.session.execute(
        select(func.coalesce(func.sum(PointsEntry.points), 0), func.coalesce(func.sum(_confirmed_expr()), 0))
        .where(period)).one()
    total = db.session.scalar(select(func.coalesce(func.sum(PointsEntry.points), 0))
                              .where(PointsEntry.user_id == user.id))
    rows = db.session.execute(
        select(PointsEntry.case_id, Case.number, PointsEntry.points, PointsEntry.reason, PointsEntry.at)
        .join(Case, Case.id == PointsEntry.case_id).where(period)
        .order_by(PointsEntry.at.desc(), PointsEntry.id.desc()).limit(limit)).all()
    return {
        "username": user.username, "display_name": user.display_name,
        "points": int(points), "confirmed_reports": int(confirmed), "total": int(total or 0),
        "entries": [{"case_id": r.case_id, "case_number": r.number, "points": r.points, "reason": r.reason,
                     "at": r.at.isoformat()} for r in rows],
    }


def leaderboard(root: Region, start: datetime, end: datetime, limit: int) -> list[dict]:
    """Volunteers of ``root``'s subtree by points earned in the period (one GROUP BY; ties by username)."""
    points = func.coalesce(func.sum(PointsEntry.points), 0).label("points")
    confirmed = func.coalesce(func.sum(_confirmed_expr()), 0).label("confirmed_reports")
    stmt = (select(User.username, User.display_name, points, confirmed)
            .join(Region, Region.code == User.region_code)
            .outerjoin(PointsEntry, and_(PointsEntry.user_id == User.id, PointsEntry.at >= start,
                                         PointsEntry.at < end))
            .where(User.role.in_(EARNING_ROLES), User.disabled_at.is_(None), subtree_criterion(Region, root))
            .group_by(User.id, User.username, User.display_name)
            .order_by(points.desc(), confirmed.desc(), User.username)
            .limit(limit))
    return [{"username": r.username, "display_name": r.display_name, "points": int(r.points),
             "confirmed_reports": int(r.confirmed_reports)} for r in db.session.execute(stmt)]


def ledger(user: User, limit: int, before: int | None = None) -> dict:
    """My whole points ledger (我的积分), newest first, with each entry's case (number, category, state, as
    the case page shows them): ``limit`` entries older than entry ``before``; ``next`` continues."""
    stmt = (select(PointsEntry.id, PointsEntry.case_id, Case.number, Case.category, Case.state, PointsEntry.points,
                   PointsEntry.reason, PointsEntry.at)
            .join(Case, Case.id == PointsEntry.case_id).where(PointsEntry.user_id == user.id))
    if before is not None:
        stmt = stmt.where(PointsEntry.id < before)
    rows = db.session.execute(stmt.order_by(PointsEntry.id.desc()).limit(limit + 1)).all()
    total = db.session.scalar(select(func.coalesce(func.sum(PointsEntry.points), 0))
                              .where(PointsEntry.user_id == user.id))
    page = rows[:limit]
    return {"total": int(total or 0), "points_by_risk": POINTS_BY_RISK,
            "entries": [{"id": r.id, "case_id": r.case_id, "case_number": r.number, "category": r.category,
                         "case_state": r.state, "points": r.points, "reason": r.reason, "at": r.at.isoformat()}
                        for r in page],
            "next": page[-1].id if len(rows) > limit else None}
