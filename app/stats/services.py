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

How they are read: for a city or a township (app/stats/models.py ROLLUP_LEVELS) the counts of the period's
whole days (China Standard Time) are sums of the roll-up, and those of the partial days at either end come
from the cases and stages themselves, so every figure is exact for any period; below a township, whose
cases are few, everything comes from the cases. The median and p90 are exact too: the roll-up's hour
buckets say which bucket holds each, and a short ordered walk of the closed cases' index from that bucket's
floor reads the values (interpolated as PostgreSQL's percentile_cont does).
"""

from __future__ import annotations

import logging
import math
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, bindparam, func, literal, or_, select, text, union_all
from sqlalchemy import case as sql_case
from sqlalchemy.exc import OperationalError

from app.auth.scope import require_region_visible, subtree_criterion
from app.cases import deadlines
from app.cases.models import OPEN_STATES, RISK_LEVELS, STATES, Case, CaseStage, Category
from app.database import UTCDateTime, reset_begin_mode, set_begin_mode, utcnow
from app.devices.models import Device
from app.errors import Forbidden
from app.extensions import db
from app.regions.models import LEVELS, Region
from app.stats import rollup
from app.stats.models import (
    CLOSED_HOURS_LEVELS,
    DELTA_TABLES,
    FINISHED_COUNTERS,
    OPEN_SQL,
    REPORTED_COUNTERS,
    REPORTED_LEVELS,
    ROLLUP_LEVELS,
    bucket_floor,
    stats_finished,
    stats_hours,
    stats_reported,
)
from app.stats.schemas import CHINA_TZ
from app.users.models import User

log = logging.getLogger(__name__)

DEFAULT_PERIOD = timedelta(days=30)
RATE_PLACES = 4
HOURS_PLACES = 2
# Deltas the triggers may pile up before a figures request folds them (about 10 ms more to read).
FOLD_AFTER = 10_000
CHILD_COUNTERS = ("total", "accepted", "closed", "open")
SHORT_INTERVAL = timedelta(days=2)


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


class Tally:
    """The counts of one population split, added up from pieces (roll-up days, raw edges)."""

    def __init__(self):
        self.reported = dict.fromkeys(REPORTED_COUNTERS, 0)
        self.categories: dict[str, list[int]] = {}  # code: [count, open]
        self.children: dict[str, list[int]] = {}  # code: CHILD_COUNTERS
        self.finished = dict.fromkeys(FINISHED_COUNTERS, 0)
        self.buckets: dict[int, int] = {}

    def add_reported(self, category: str, counts: dict) -> None:
        for key in REPORTED_COUNTERS:
            self.reported[key] += int(counts[key] or 0)
        row = self.categories.setdefault(category, [0, 0])
        row[0] += int(counts["total"] or 0)
        row[1] += int(counts["open"] or 0)

    def add_child(self, code: str, counts) -> None:
        row = self.children.setdefault(code, [0] * len(CHILD_COUNTERS))
        for i, n in enumerate(counts):
            row[i] += int(n or 0)


def _case_counts(state: str, risk: str, entered: int, n: int) -> dict:
    """A group of ``n`` cases of one state, colour and entered flag as REPORTED_COUNTERS (the roll-up's
    definitions, app/stats/rollup.py, in Python)."""
    is_open = state in OPEN_STATES
    counts = {"total": n, "accepted": n if entered else 0, "closed": n if state == "closed" else 0,
              "open": n if is_open else 0}
    counts.update({f"state_{s}": n if state == s else 0 for s in STATES})
    counts.update({f"risk_{r}": n if risk == r else 0 for r in RISK_LEVELS})
    counts.update({f"open_{r}": n if risk == r and is_open else 0 for r in RISK_LEVELS})
    return counts


def _child_level(root: Region) -> str | None:
    rank = LEVELS.index(root.level)
    return LEVELS[rank + 1] if rank + 1 < len(LEVELS) else None


# ---------------------------------------------------------------------------------------------- raw


def _raw(tally: Tally, root: Region, start: datetime, end: datetime, buckets: bool) -> None:
    """Add the cases and stages of [start, end) to ``tally``, read from the tables themselves."""
    where = subtree_criterion(Case, root)
    entered = sql_case((or_(Case.accepted_at.is_not(None), Case.handled_on_spot.is_(True)), 1), else_=0)
    child = _child_level(root)
    child_code = getattr(Case, f"{child}_code") if child else literal(None)
    groups = (child_code, Case.category, Case.state, Case.risk_level, entered)
    for code, category, state, risk, is_entered, n in db.session.execute(
            select(*groups, func.count()).where(where, Case.reported_at >= start, Case.reported_at < end)
            .group_by(*groups)):
        counts = _case_counts(state, risk, is_entered, n)
        tally.add_reported(category, counts)
        if code is not None:
            tally.add_child(code, [counts[k] for k in CHILD_COUNTERS])

    closed_in_period = _closed_in(root, start, end)
    closed_n, closed_grid, timed = _closed_counts(root, start, end)
    ended, on_time = db.session.execute(_stages_ended(root, start, end)).one()
    for key, n in zip(FINISHED_COUNTERS, (closed_n, closed_grid, timed, ended, on_time), strict=True):
        tally.finished[key] += int(n or 0)
    if buckets:
        bucket = text(rollup.bucket_sql(db.session.get_bind().dialect.name, "cases.hours_to_close"))
        for b, n in db.session.execute(select(bucket, func.count()).where(
                closed_in_period, Case.hours_to_close.is_not(None)).group_by(bucket)):
            tally.buckets[b] = tally.buckets.get(b, 0) + n


def _closed_in(root: Region, start: datetime, end: datetime):
    """Cases of ``root`` closed in [start, end) and still closed. The state is a literal, not a bound
    parameter, so that both engines see that the partial index ix_cases_closed_hours_<level> applies."""
    return and_(subtree_criterion(Case, root), text("cases.state = 'closed'"), Case.closed_at >= start,
                Case.closed_at < end)


def _closed_counts(root: Region, start: datetime, end: datetime) -> tuple[int, int, int]:
    """Cases of ``root`` closed in [start, end): all, at grid level, with hours to close. Over a long period
    SQLite is told to take the region's partial index of closed cases (else it walks every closed case of
    the period, city-wide, for a village's year)."""
    hint = ""
    if db.session.get_bind().dialect.name == "sqlite" and root.level in CLOSED_HOURS_LEVELS \
            and end - start > SHORT_INTERVAL:
        hint = f" INDEXED BY ix_cases_closed_hours_{root.level}"
    row = db.session.execute(text(
        f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN level = 'grid' THEN 1 ELSE 0 END), 0), COUNT(hours_to_close) "
        f"FROM cases{hint} WHERE {root.level}_code = :code AND state = 'closed' AND closed_at >= :start "
        f"AND closed_at < :end").bindparams(bindparam("start", type_=UTCDateTime()),
                                            bindparam("end", type_=UTCDateTime())),
        {"code": root.code, "start": start, "end": end}).one()
    return int(row[0]), int(row[1] or 0), int(row[2])


def _stages_ended(root: Region, start: datetime, end: datetime):
    where = subtree_criterion(Case, root)
    stages = select(func.count(), _count_if(CaseStage.outcome == "on_time")).where(
        CaseStage.ended_at >= start, CaseStage.ended_at < end, CaseStage.outcome.is_not(None))
    if root.level == "city" or end - start <= SHORT_INTERVAL:
        # A city holds nearly every case, and an edge day of a period holds few stages: the period is the
        # sharper filter, so walk the period's stages.
        return stages.join(Case, Case.id == CaseStage.case_id).where(where)
    # Below it, the region is: a semi-join walks the region's cases by index and their stages by case_id
    # (a join let SQLite walk every stage of the period instead, 50× slower for a township).
    return stages.where(CaseStage.case_id.in_(select(Case.id).where(where)))


# ---------------------------------------------------------------------------------------------- roll-up


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), CHINA_TZ)


def whole_days(start: datetime, end: datetime) -> tuple[date, date] | None:
    """The China Standard Time days [first, last) that lie wholly inside [start, end), or None."""
    first = start.astimezone(CHINA_TZ).date()
    if _midnight(first) < start:
        first += timedelta(days=1)
    last = end.astimezone(CHINA_TZ).date()
    return (first, last) if first < last else None


def _fold_if_due() -> None:
    """Fold the triggers' deltas when enough have piled up, in a transaction of its own."""
    if not rollup.pending(db.session.connection(), FOLD_AFTER):
        return
    token = set_begin_mode("IMMEDIATE")
    try:
        with db.engine.begin() as conn:
            rollup.fold(conn)
    except OperationalError:
        # Only housekeeping: the figures read the sums and the deltas alike, so a fold that cannot get the
        # write lock now (a long sync batch, a busy database) is left to the next request.
        log.warning("roll-up fold skipped: the database is busy", exc_info=True)
    finally:
        reset_begin_mode(token)


def _both(table, days: tuple[date, date], regions, *columns: str):
    """The rows of a roll-up's sums and deltas together (one statement, hence one snapshot: a fold that
    commits meanwhile moves rows from one to the other), of ``regions`` (a code or a subquery of codes) and
    the days [first, last); the criteria inside each part, where the sums' key serves them."""
    first, last = days
    parts = []
    for t in (table, DELTA_TABLES[table]):
        region = t.c.region_code == regions if isinstance(regions, str) else t.c.region_code.in_(regions)
        parts.append(select(*(t.c[c] for c in columns)).where(region, t.c.day >= first, t.c.day < last))
    return union_all(*parts).subquery()


def _from_rollup(tally: Tally, root: Region, first: date, last: date) -> None:
    """Add the whole days [first, last) of ``root`` to ``tally`` from the roll-up (its sums by key, then its
    deltas: few, a heap read)."""
    days = (first, last)
    t = _both(stats_reported, days, root.code, "category", *REPORTED_COUNTERS)
    for row in db.session.execute(
            select(t.c.category, *(func.sum(t.c[k]).label(k) for k in REPORTED_COUNTERS))
            .group_by(t.c.category)).mappings():
        tally.add_reported(row["category"], row)
    if _child_level(root) in REPORTED_LEVELS:
        # The codes themselves, not a subquery: the planner then sees a few keys of the index.
        children = list(db.session.scalars(select(Region.code).where(Region.parent_code == root.code)))
        c = _both(stats_reported, days, children, "region_code", *CHILD_COUNTERS)
        for code, *counts in db.session.execute(
                select(c.c.region_code, *(func.sum(c.c[k]) for k in CHILD_COUNTERS)).group_by(c.c.region_code)):
            tally.add_child(code, counts)
    f = _both(stats_finished, days, root.code, *FINISHED_COUNTERS)
    row = db.session.execute(select(*(func.sum(f.c[k]).label(k) for k in FINISHED_COUNTERS))).mappings().one()
    for key in FINISHED_COUNTERS:
        tally.finished[key] += int(row[key] or 0)
    h = _both(stats_hours, days, root.code, "bucket", "n")
    for b, n in db.session.execute(select(h.c.bucket, func.sum(h.c.n)).group_by(h.c.bucket)):
        tally.buckets[b] = tally.buckets.get(b, 0) + int(n or 0)


def _tally(root: Region, start: datetime, end: datetime, use_rollup: bool) -> Tally:
    tally = Tally()
    days = whole_days(start, end) if use_rollup else None
    if days is None:
        _raw(tally, root, start, end, buckets=use_rollup)
        return tally
    _fold_if_due()
    first, last = days
    if _midnight(last) < end and _nothing_from(end):
        last += timedelta(days=1)  # the period's last day, cut at ``end``, is all its rows (usually: now)
        end = _midnight(last)
    _from_rollup(tally, root, first, last)
    for a, b in ((start, _midnight(first)), (_midnight(last), end)):
        if a < b:
            _raw(tally, root, a, b, buckets=True)
    return tally


def _nothing_from(moment: datetime) -> bool:
    """Whether no case was reported or closed and no stage ended at or after ``moment`` (anywhere): then a
    day cut at ``moment`` holds all its rows and comes whole from the roll-up. Three index probes; true for
    a period that ends now, the dashboards' usual one."""
    probes = (select(Case.id).where(Case.reported_at >= moment),
              select(Case.id).where(Case.state == "closed", Case.closed_at >= moment),
              select(CaseStage.case_id).where(CaseStage.ended_at >= moment))
    return not any(db.session.execute(probe.limit(1)).first() for probe in probes)


# ---------------------------------------------------------------------------------------------- percentiles


def _interpolate(position: float, pair: list[float]) -> float | None:
    if not pair:
        return None
    pair = sorted(pair)
    low = math.floor(position)
    value = pair[0] if len(pair) == 1 else pair[0] + (position - low) * (pair[1] - pair[0])
    return round(float(value), HOURS_PLACES)


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
    return [_interpolate(position, values.get(k, [])) for k, position in enumerate(positions)]


def _walk(root: Region, floor: float | None):
    """The two closed hours_to_close of ``root`` at rank :skip from :floor up, closed in [:start, :end), by
    an ordered walk of the partial index (SQLite is told to: it would rather take (state, closed_at) and
    sort the whole period's closed cases)."""
    hint = f" INDEXED BY ix_cases_closed_hours_{root.level}" if db.session.get_bind().dialect.name == "sqlite" else ""
    lower = "hours_to_close IS NOT NULL" if floor is None else "hours_to_close >= :floor"
    return text(f"SELECT hours_to_close FROM cases{hint} WHERE {root.level}_code = :code AND state = 'closed' "
                f"AND closed_at >= :start AND closed_at < :end AND {lower} ORDER BY hours_to_close "
                f"LIMIT 2 OFFSET :skip").bindparams(bindparam("start", type_=UTCDateTime()),
                                                    bindparam("end", type_=UTCDateTime()))


def _bucketed_percentiles(root: Region, start: datetime, end: datetime, buckets: dict[int, int],
                          fractions: tuple[float, ...]) -> list[float | None]:
    """The same percentiles for a roll-up region: the bucket counts give each position's bucket and its
    rank inside it; an ordered walk of ix_cases_closed_hours_<level> from the bucket's floor (closed_at
    checked in the index) reads the value there and the next one."""
    n = sum(buckets.values())
    if n == 0:
        return [None] * len(fractions)
    out = []
    for f in fractions:
        position = f * (n - 1)
        rank, below = math.floor(position), 0
        for bucket in sorted(buckets):
            if below + buckets[bucket] > rank:
                break
            below += buckets[bucket]
        floor = bucket_floor(bucket)
        pair = list(db.session.scalars(_walk(root, floor), {
            "code": root.code, "start": start, "end": end, "floor": floor, "skip": rank - below}))
        if not pair:  # PostgreSQL: a close committed between the counts and the walk; count afresh
            timed = db.session.scalar(select(func.count(Case.hours_to_close)).where(_closed_in(root, start, end)))
            return _percentiles(_closed_in(root, start, end), fractions, int(timed or 0))
        out.append(_interpolate(position, pair))
    return out


# ---------------------------------------------------------------------------------------------- figures


def figures(user: User, region_code: str | None, start: datetime | None, end: datetime | None) -> dict:
    """Every figure of ``GET /api/v1/stats`` for a region in the user's scope and a period.

    Raises NotFound (region outside the scope) and Forbidden (volunteers)."""
    if user.role == "volunteer":
        raise Forbidden()
    root = resolve_scope(user, region_code)
    start, end = resolve_period(start, end)
    return compute(root, start, end, utcnow())


def compute(root: Region, start: datetime, end: datetime, now: datetime, *, use_rollup: bool = True) -> dict:
    """The figures of ``root`` over [start, end) as of ``now``; ``use_rollup=False`` reads everything from the
    cases and stages (what the roll-up must agree with: tests/stats/test_rollup.py)."""
    use_rollup = use_rollup and root.level in ROLLUP_LEVELS
    where = subtree_criterion(Case, root)
    tally = _tally(root, start, end, use_rollup)
    reported, finished = tally.reported, tally.finished

    by_category = []
    for code, name in db.session.execute(select(Category.code, Category.name_zh)
                                         .order_by(Category.sort, Category.code)):
        count, n_open = tally.categories.get(code, (0, 0))
        if count:
            by_category.append({"category": code, "name": name, "count": count, "open": n_open})

    if use_rollup:
        median, p90 = _bucketed_percentiles(root, start, end, tally.buckets, (0.5, 0.9))
    else:
        median, p90 = _percentiles(_closed_in(root, start, end), (0.5, 0.9), finished["timed"])

    # The open states as literals: the city's count is an index-only walk of ix_cases_open_due_city.
    overdue = db.session.scalar(select(func.count()).select_from(Case).where(
        where, text(OPEN_SQL), deadlines.overdue_criterion(now)))
    devices = db.session.scalar(
        select(func.count(Device.id)).join(User, User.id == Device.user_id)
        .join(Region, Region.code == User.region_code)
        .where(subtree_criterion(Region, root), Device.outbox_pending > 0))

    by_region = []
    if _child_level(root):
        for code, name in db.session.execute(select(Region.code, Region.name)
                                             .where(Region.parent_code == root.code).order_by(Region.code)):
            total, accepted, closed, n_open = tally.children.get(code, (0, 0, 0, 0))
            by_region.append({"code": code, "name": name, "total": total, "open": n_open, "accepted": accepted,
                              "closed": closed, "close_out_rate": _rate(closed, accepted)})

    return {
        "region": {"code": root.code, "name": root.name, "level": root.level},
        "from": start.isoformat(), "to": end.isoformat(), "generated_at": now.isoformat(),
        "total": reported["total"],
        "by_state": {s: reported[f"state_{s}"] for s in STATES},
        "by_risk": {r: reported[f"risk_{r}"] for r in RISK_LEVELS},
        "open_by_risk": {r: reported[f"open_{r}"] for r in RISK_LEVELS},
        "by_category": by_category,
        "by_region": by_region,
        "accepted": reported["accepted"], "closed": reported["closed"],
        "close_out_rate": _rate(reported["closed"], reported["accepted"]),
        "stages_ended": finished["ended"], "on_time_rate": _rate(finished["on_time"], finished["ended"]),
        # Which clock each figure counts: every stage on its own rule's (natural or working time); hours to
        # close in natural time.
        "on_time_clock": deadlines.ON_TIME_CLOCK,
        "closed_in_period": finished["closed"], "grid_resolution_rate": _rate(finished["closed_grid"],
                                                                              finished["closed"]),
        "median_hours_to_close": median, "p90_hours_to_close": p90,
        "hours_to_close_clock": deadlines.HOURS_TO_CLOSE_CLOCK,
        "overdue": int(overdue or 0), "devices_with_unsent": int(devices or 0),
    }


__all__ = ["compute", "figures", "resolve_period", "resolve_scope", "whole_days"]
