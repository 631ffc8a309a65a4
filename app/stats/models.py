"""The figures' roll-up (app/stats/rollup.py keeps it): what ``GET /api/v1/stats`` adds up, per region of the
upper levels (ROLLUP_LEVELS) and per day in China Standard Time.

Each roll-up is two tables: the *sums* (one row per key, the primary key) and the *deltas* (no key, no index:
the cheapest append there is). Database triggers on ``cases`` and ``case_stages`` append deltas (a case's
new contribution, minus its old one) and never update a row, so concurrent writers never wait for each other
on a shared counter. A figure is the SUM of both tables' rows of its region and days; ``fold`` moves the
deltas into the sums now and then (the figures do it when enough have piled up).

- ``stats_reported``: cases by the day they were *reported*, per category: total, accepted (ever accepted or
  handled on the spot), closed, open, and counts by state and by colour (all and open);
- ``stats_finished``: cases *closed* by the day they closed (still closed): closed, at grid level, with hours
  to close; stages *ended* by the day they ended: ended, on time;
- ``stats_hours``: the closed cases by hour bucket (see HOUR_BANDS).
"""

from __future__ import annotations

from sqlalchemy import Column, Date, Index, Integer, SmallInteger, String, Table, text

from app.cases.models import OPEN_STATES, RISK_LEVELS, STATES, Case
from app.extensions import db

# The levels with rows of their own. Below a township a region's cases are few enough (a village holds
# about 1 % of the city's) that its figures come straight from the cases; village rows of stats_reported
# serve the by-region split of a township.
ROLLUP_LEVELS = ("city", "township")
REPORTED_LEVELS = (*ROLLUP_LEVELS, "village")

REPORTED_COUNTERS = ("total", "accepted", "closed", "open", *(f"state_{s}" for s in STATES),
                     *(f"risk_{r}" for r in RISK_LEVELS), *(f"open_{r}" for r in RISK_LEVELS))
FINISHED_COUNTERS = ("closed", "closed_grid", "timed", "ended", "on_time")
HOURS_COUNTERS = ("n",)


def _pair(name: str, keys: list[Column], counters: tuple[str, ...]) -> tuple[Table, Table]:
    """The sums table (keyed) and its deltas table (``<name>_delta``, no key)."""
    def columns(keyed: bool):
        return [*(Column(c.name, c.type, nullable=False, primary_key=keyed) for c in keys),
                *(Column(c, Integer, nullable=False, server_default=text("0")) for c in counters)]

    return Table(name, db.metadata, *columns(True)), Table(f"{name}_delta", db.metadata, *columns(False))


stats_reported, stats_reported_delta = _pair(
    "stats_reported", [Column("region_code", String(32)), Column("day", Date), Column("category", String(32))],
    REPORTED_COUNTERS)
stats_finished, stats_finished_delta = _pair(
    "stats_finished", [Column("region_code", String(32)), Column("day", Date)], FINISHED_COUNTERS)

# Closed cases by hours to close, in buckets (HOUR_BANDS): where the median and p90 lie, so that the exact
# values are read from a short ordered walk of ix_cases_closed_hours_<level>, not from a sort of them all.
stats_hours, stats_hours_delta = _pair(
    "stats_hours", [Column("region_code", String(32)), Column("day", Date), Column("bucket", SmallInteger)],
    HOURS_COUNTERS)

# Hour buckets: (first hour, width) per band, widths powers of two so that a bucket's lower edge is exact in
# floating point on both engines; 64 buckets per band, then one for the rest.
HOUR_BANDS = ((0, 1), (64, 4), (320, 32))
BUCKETS_PER_BAND = 64


def bucket_floor(bucket: int) -> float | None:
    """The lowest hours_to_close of a bucket (None: bucket 0 also holds anything below 0)."""
    if bucket == 0:
        return None
    band, step = divmod(bucket, BUCKETS_PER_BAND)
    if band >= len(HOUR_BANDS):
        start, width = HOUR_BANDS[-1]
        return float(start + width * BUCKETS_PER_BAND)
    start, width = HOUR_BANDS[band]
    return float(start + width * step)


ROLLUP_TABLES = (stats_reported, stats_finished, stats_hours)
DELTA_TABLES = {stats_reported: stats_reported_delta, stats_finished: stats_finished_delta,
                stats_hours: stats_hours_delta}

# Closed cases of a region in hours-to-close order, with the close time to filter by period from the index
# alone: the ordered walk of the percentiles. Partial: an open case (every new report) costs no entry.
CLOSED_HOURS_LEVELS = (*ROLLUP_LEVELS, "village")
for _level in CLOSED_HOURS_LEVELS:
    Index(f"ix_cases_closed_hours_{_level}", Case.__table__.c[f"{_level}_code"], Case.__table__.c.hours_to_close,
          Case.__table__.c.closed_at, sqlite_where=text("state = 'closed'"), postgresql_where=text("state = 'closed'"))

# Open cases of the city by deadline: "overdue now" for the whole city is an index-only count (the
# townships have ix_cases_township_due). Partial, with the open states as literals in the queries too.
OPEN_SQL = "cases.state IN (" + ", ".join(f"'{s}'" for s in OPEN_STATES) + ")"
Index("ix_cases_open_due_city", Case.__table__.c.city_code, Case.__table__.c.due_at,
      sqlite_where=text(OPEN_SQL.removeprefix("cases.")), postgresql_where=text(OPEN_SQL.removeprefix("cases.")))
