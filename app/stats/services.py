"""The figures of a region and a period, every one an aggregate computed by the database.

Populations (all inside the chosen region's subtree):
- cases *reported* in the period (``reported_at`` in [from, to)): ``total``, ``by_state``, ``by_risk``,
  ``by_category``, ``by_region`` and ``close_out_rate`` (销号率: closed / ever accepted, where a matter handled
  on the spot counts as accepted: it never passes review, yet it is closed);
- cases *closed* in the period (``closed_at`` in [from, to), still closed): ``grid_resolution_rate``
  (网格内化解率: closed at handling level grid / closed) and the median and p90 of ``hours_to_close``;
- stages *ended* in the period: ``on_time_rate`` (on time / ended);
- now, whatever the period: ``overdue`` (open cases past their deadline) and ``devices_with_unsent``.
Rates are ``None`` when their denominator is 0.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import and_, func, literal, or_, select, union_all
from sqlalchemy import case as sql_case

from app.auth.scope import require_region_visible, subtree_criterion
from app.cases import deadlines
from app.cases.models import OPEN_STATES, RISK_LEVELS, STATES, Case, CaseStage, Category
from app.database import utcnow
from app.devices.models import Device
from app.errors import Forbidden
from app.extensions import db
from app.regions.models import LEVELS, Region
from app.users.models import User

DEFAULT_PERIOD = timedelta(days=30)
RATE_PLACES = 4
HOURS_PLACES = 2


def resolve_scope(user: User, code: str | None) -> Region:
    """The region the figures are about: ``code`` if the user may see it, else their own. Raises NotFound."""
    if code is None:
        return require_region_visible(user.region, user)
    return require_region_visible(db.session.get(Region, code), user)


def resolve_period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or utcnow()
    return start or end - DEFAULT_PERIOD, end


def _rate(numerator, denominator) -> float | None:
    numerator, denominator = int(numerator or 0), int(denominator or 0)
    return None if denominator == 0 else round(numerator / denominator, RATE_PLACES)


def _count_if(condition):
    return func.coalesce(func.sum(sql_case((condition, 1), else_=0)), 0)


def _percentiles(criterion, fractions: tuple[float, ...], n: int) -> list[float | None]:
    """Continuous percentiles (PostgreSQL's ``percentile_cont``) of hours_to_close over ``criterion``, whose
    rows with an hours_to_close number ``n``.

    PostgreSQL computes them itself; SQLite has no percentile function, so it reads the (at most two)
    ordered values around each position with ``ORDER BY … LIMIT 2 OFFSET k`` (all positions in one
    statement), and they are interpolated the way percentile_cont does, so both engines give the same
    figure."""
    where = and_(criterion, Case.hours_to_close.is_not(None))
    if n == 0:
        return [None] * len(fractions)
    if db.session.get_bind().dialect.name == "postgresql":
        row = db.session.execute(select(*[
            func.percentile_cont(f).within_group(Case.hours_to_close) for f in fractions]).where(where)).one()
        return [None if v is None else round(float(v), HOURS_PLACES) for v in row]
    positions = [f * (n - 1) for f in fractions]
    parts = []
    for k, position in enumerate(positions):
        around = (select(Case.hours_to_close.label("hours")).where(where).order_by(Case.hours_to_close)
                  .limit(2).offset(math.floor(position)).subquery())
        parts.append(select(literal(k).label("k"), around.c.hours))
    values: dict[int, list[float]] = {}
    for k, hours in db.session.execute(union_all(*parts)):
        values.setdefault(k, []).append(hours)
    out: list[float | None] = []
    for k, position in enumerate(positions):
        pair = sorted(values.get(k, []))
        if not pair:
            out.append(None)
            continue
        low = math.floor(position)
        value = pair[0] if len(pair) == 1 else pair[0] + (position - low) * (pair[1] - pair[0])
        out.append(round(float(value), HOURS_PLACES))
    return out


def figures(user: User, region_code: str | None, start: datetime | None, end: datetime | None) -> dict:
    """Every figure of ``GET /api/v1/stats`` for a region in the user's scope and a period.

    Raises NotFound (region outside the scope) and Forbidden (volunteers)."""
    if user.role == "volunteer":
        raise Forbidden()
    root = resolve_scope(user, region_code)
    start, end = resolve_period(start, end)
    now = utcnow()
    where = subtree_criterion(Case, root)
    reported = and_(where, Case.reported_at >= start, Case.reported_at < end)
    entered = or_(Case.accepted_at.is_not(None), Case.handled_on_spot.is_(True))
    closed_in_period = and_(where, Case.state == "closed", Case.closed_at >= start, Case.closed_at < end)

    by_state = dict.fromkeys(STATES, 0)
    for state, n in db.session.execute(select(Case.state, func.count()).where(reported).group_by(Case.state)):
        by_state[state] = n
    by_risk = dict.fromkeys(RISK_LEVELS, 0)
    open_by_risk = dict.fromkeys(RISK_LEVELS, 0)
    for risk, n, n_open in db.session.execute(
            select(Case.risk_level, func.count(), _count_if(Case.state.in_(OPEN_STATES)))
            .where(reported).group_by(Case.risk_level)):
        by_risk[risk], open_by_risk[risk] = n, int(n_open)
    by_category = []
    for code, name, n, n_open in db.session.execute(
            select(Case.category, Category.name_zh, func.count(), _count_if(Case.state.in_(OPEN_STATES)))
            .join(Category, Category.code == Case.category).where(reported)
            .group_by(Case.category, Category.name_zh, Category.sort).order_by(Category.sort, Case.category)):
        by_category.append({"category": code, "name": name, "count": n, "open": int(n_open)})

    total, accepted, closed = db.session.execute(
        select(func.count(), _count_if(entered), _count_if(Case.state == "closed")).where(reported)).one()

    closed_n, closed_grid, timed = db.session.execute(
        select(func.count(), _count_if(Case.level == "grid"), func.count(Case.hours_to_close))
        .where(closed_in_period)).one()
    median, p90 = _percentiles(closed_in_period, (0.5, 0.9), int(timed))

    stages = select(func.count(), _count_if(CaseStage.outcome == "on_time")).where(
        CaseStage.ended_at >= start, CaseStage.ended_at < end, CaseStage.outcome.is_not(None))
    if root.level == "city":
        # A city holds nearly every case: the period is the sharper filter, so walk the period's stages.
        stages = stages.join(Case, Case.id == CaseStage.case_id).where(where)
    else:
        # Below it, the region is: a semi-join walks the region's cases by index and their stages by case_id
        # (a join let SQLite walk every stage of the period instead, 50× slower for a township).
        stages = stages.where(CaseStage.case_id.in_(select(Case.id).where(where)))
    ended, on_time = db.session.execute(stages).one()

    overdue = db.session.scalar(select(func.count()).select_from(Case).where(
        where, Case.state.in_(OPEN_STATES), deadlines.overdue_criterion(now)))
    devices = db.session.scalar(
        select(func.count(Device.id)).join(User, User.id == Device.user_id)
        .join(Region, Region.code == User.region_code)
        .where(subtree_criterion(Region, root), Device.outbox_pending > 0))

    return {
        "region": {"code": root.code, "name": root.name, "level": root.level},
        "from": start.isoformat(), "to": end.isoformat(), "generated_at": now.isoformat(),
        "total": int(total),
        "by_state": by_state, "by_risk": by_risk, "open_by_risk": open_by_risk, "by_category": by_category,
        "by_region": _by_region(root, start, end),
        "accepted": int(accepted), "closed": int(closed),
        "close_out_rate": _rate(closed, accepted),
        "stages_ended": int(ended), "on_time_rate": _rate(on_time, ended),
        "closed_in_period": int(closed_n), "grid_resolution_rate": _rate(closed_grid, closed_n),
        "median_hours_to_close": median, "p90_hours_to_close": p90,
        "overdue": int(overdue or 0), "devices_with_unsent": int(devices or 0),
    }


def _by_region(root: Region, start: datetime, end: datetime) -> list[dict]:
    """Per child region of ``root`` (none below a micro-grid): cases reported in the period, accepted,
    closed, close-out rate. One outer join on the child level's code column, grouped."""
    rank = LEVELS.index(root.level)
    if rank + 1 >= len(LEVELS):
        return []
    child_code = getattr(Case, f"{LEVELS[rank + 1]}_code")
    entered = or_(Case.accepted_at.is_not(None), Case.handled_on_spot.is_(True))
    rows = db.session.execute(
        select(Region.code, Region.name, func.count(Case.id), _count_if(entered), _count_if(Case.state == "closed"),
               _count_if(Case.state.in_(OPEN_STATES)))
        .outerjoin(Case, and_(child_code == Region.code, subtree_criterion(Case, root),  # the parent's index
                              Case.reported_at >= start, Case.reported_at < end))
        .where(Region.parent_code == root.code)
        .group_by(Region.code, Region.name).order_by(Region.code)).all()
    return [{"code": code, "name": name, "total": n, "open": int(n_open), "accepted": int(accepted),
             "closed": int(closed), "close_out_rate": _rate(closed, accepted)}
            for code, name, n, accepted, closed, n_open in rows]


__all__ = ["figures", "resolve_period", "resolve_scope"]
