"""What a fresh database holds before anyone has configured anything: the default categories of grid work,
the default time limits with their clocks, and the State Council's holiday calendar.

``install(connection)`` adds whichever of them is missing and never changes a row that is there, so what an
admin renamed, deactivated or re-timed stays as it is. It is run once per database by the migration
``first-run defaults`` (``flask db upgrade``: recorded in ``alembic_version`` like any revision, so a second
upgrade runs nothing), and by ``db.create_all`` for the test and benchmark databases (wired in the app factory).
It writes through its own table descriptions, naming only the columns it fills, so it works against the
schema of that migration and of every later one.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Connection

from app.cases import official_calendar

log = logging.getLogger(__name__)

ALL = ["volunteer", "grid_worker", "reviewer", "admin"]
STAFF = ["grid_worker", "reviewer", "admin"]

# The default categories (a deployment edits them; these follow the 平安建设 reports).
CATEGORIES = [
    ("fire_hazard", "消防隐患", "Fire hazard", ALL),
    ("ebike_charging", "电动车违规充电", "E-bike charging indoors", ALL),
    ("gas_safety", "燃气安全", "Gas safety", ALL),
    ("public_order", "治安隐患", "Public order", ALL),
    ("road_safety", "道路交通安全", "Road safety", ALL),
    ("sanitation", "环境卫生", "Sanitation", ALL),
    ("illegal_building", "违章搭建", "Illegal construction", ALL),
    ("flood_typhoon", "防汛防台", "Flood and typhoon", ALL),
    ("dispute", "矛盾纠纷", "Neighbourhood dispute", STAFF),
    ("work_safety", "安全生产", "Workplace safety", STAFF),
    ("vulnerable_people", "重点人员关爱", "People needing care", STAFF),
    ("other", "其他", "Other", ALL),
]

# The default time limits (DESIGN.md: accept within 2 h / 8 h / 24 h, close within 24 h / 72 h / 7 days), in
# minutes of the rule's clock. Red counts natural time (an emergency does not wait for Monday). Yellow and blue
# count working time, where a day of the design's figures is one working day of the default office hours
# (7 h): 72 h to close are 3 working days, 7 days are 7 working days, and the order red < yellow < blue holds
# on every clock.
DEFAULT_CLOCK = {"red": "natural", "yellow": "working", "blue": "working"}
WORKING_DAY = 7 * 60  # office minutes in a working day at the default office hours
SLA_RULES = [
    ("accept", "red", 2 * 60), ("accept", "yellow", WORKING_DAY // 3), ("accept", "blue", WORKING_DAY),
    ("close", "red", 24 * 60), ("close", "yellow", 3 * WORKING_DAY), ("close", "blue", 7 * WORKING_DAY),
]

_categories = sa.table("categories", sa.column("code"), sa.column("name_zh"), sa.column("name_en"),
                       sa.column("roles", sa.JSON), sa.column("sort"), sa.column("active"))
_sla_rules = sa.table("sla_rules", sa.column("stage"), sa.column("risk_level"), sa.column("category"),
                      sa.column("level"), sa.column("limit_minutes"), sa.column("clock"))
_calendar_days = sa.table("calendar_days", sa.column("day", sa.Date), sa.column("workday", sa.Boolean),
                          sa.column("name"))


def install(connection: Connection) -> dict[str, int]:
    """Add the default categories, time limits and official calendar days that are missing, in the caller's
    transaction; returns how many rows of each were added."""
    have = set(connection.scalars(sa.select(_categories.c.code)))
    categories = [{"code": code, "name_zh": zh, "name_en": en, "roles": roles, "sort": sort, "active": True}
                  for sort, (code, zh, en, roles) in enumerate(CATEGORIES) if code not in have]
    if categories:
        connection.execute(_categories.insert(), categories)

    # The general rules (no category, no level): NULLs never collide in a unique constraint, so look first.
    have = set(connection.execute(sa.select(_sla_rules.c.stage, _sla_rules.c.risk_level)
                                  .where(_sla_rules.c.category.is_(None), _sla_rules.c.level.is_(None))).all())
    rules = [{"stage": stage, "risk_level": risk, "category": None, "level": None, "limit_minutes": minutes,
              "clock": DEFAULT_CLOCK[risk]} for stage, risk, minutes in SLA_RULES if (stage, risk) not in have]
    if rules:
        connection.execute(_sla_rules.insert(), rules)

    known = dict(connection.execute(sa.select(_calendar_days.c.day, _calendar_days.c.workday)).all())
    official = official_calendar.official_days()
    days = [{"day": day, "workday": workday, "name": name} for day, workday, name in official if day not in known]
    differ = [day for day, workday, _ in official if day in known and known[day] != workday]
    if days:
        connection.execute(_calendar_days.insert(), days)
    if differ:
        # An earlier import disagrees with the notices: kept (it may be a local arrangement), but said.
        log.warning("calendar_days kept as imported where they differ from the State Council's notices "
                    "(%s): %s", official_calendar.source(), ", ".join(d.isoformat() for d in differ))
    return {"categories": len(categories), "sla_rules": len(rules), "calendar_days": len(days)}


def _install_after_create(target, connection, tables=(), **kw):
    if {"categories", "sla_rules", "calendar_days"} <= {t.name for t in tables}:
        install(connection)


def register(metadata: MetaData) -> None:
    """``metadata.create_all`` installs the defaults too (the test and benchmark databases), as the
    migration does for ``db upgrade``."""
    if not event.contains(metadata, "after_create", _install_after_create):
        event.listen(metadata, "after_create", _install_after_create)
