"""Deadlines: each stage of a case is timed on its own, on the clock its rule names, and its outcome is
frozen when it ends.

Stages: ``accept`` (from the report, or its resubmission, until it is accepted, returned, rejected or
merged) and ``close`` (from acceptance, or a report handled on the spot, until close-out). Limits come
from ``sla_rules`` (by stage and risk colour, optionally narrowed to a category and a handling level), each
with its clock (app/cases/clock.py): ``natural`` time, a clock that never stops, or ``working`` time, the
office hours of working days in China Standard Time. Working days are Monday to Friday, except the holidays
and make-up workdays (调休) kept in ``calendar_days`` (the State Council's, loaded at first run: see
app/cases/official_calendar.py). A suspended case (挂起) stops its clock. The light of an open case: green
under 80 % of its limit, yellow from 80 %, red when overdue. Hours to close are natural hours.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, extract, func, select
from sqlalchemy import case as sql_case

from app.cases import unit_of_work
from app.cases.clock import CHINA, DEFAULT_OFFICE_HOURS, NaturalClock, OfficeHours, WorkingClock, office_hours
from app.cases.models import CalendarDay, Case, CaseStage, SlaRule
from app.extensions import db

DAY_S = 86_400
WARN_FRACTION = 0.8
# The calendar should know the State Council's arrangement this far ahead (/readyz, /metrics).
COVERAGE_AHEAD_DAYS = 90

# Used only when an admin removed a general rule: DESIGN.md's defaults (app/cases/defaults.py seeds them).
DEFAULT_LIMITS_MIN = {
    ("accept", "red"): 2 * 60, ("accept", "yellow"): 8 * 60, ("accept", "blue"): 24 * 60,
    ("close", "red"): 24 * 60, ("close", "yellow"): 72 * 60, ("close", "blue"): 7 * 24 * 60,
}
DEFAULT_CLOCK = {"red": "natural", "yellow": "working", "blue": "working"}
# What the figures count on which clock (the stats API says so beside each figure).
ON_TIME_CLOCK = "rule"  # each stage on its own rule's clock
HOURS_TO_CLOSE_CLOCK = "natural"


# ---------------------------------------------------------------------------------------------- calendar


def _cache() -> dict:
    return unit_of_work.current().cache


# Changes whenever a day is added, removed, moved or flipped between day off and workday.
_DAY_NUMBER = (extract("year", CalendarDay.day) * 10000 + extract("month", CalendarDay.day) * 100
               + extract("day", CalendarDay.day))
_FINGERPRINT = select(func.count(), func.coalesce(func.sum(_DAY_NUMBER * sql_case((CalendarDay.workday, 2), else_=1)), 0))


def configured_office_hours() -> OfficeHours:
    """The office hours of this deployment (``OFFICE_HOURS``, ``OFFICE_HOURS_SEASONS``), parsed once."""
    cfg = current_app.config
    return office_hours(cfg.get("OFFICE_HOURS") or DEFAULT_OFFICE_HOURS, cfg.get("OFFICE_HOURS_SEASONS") or "")


class Calendar:
    """Which days are working days (Monday-Friday, unless the database says otherwise), the office hours,
    and the two clocks they make."""

    def __init__(self, overrides: dict[date, bool], hours: OfficeHours | None = None):
        self.overrides = overrides
        self.hours = hours or OfficeHours.parse()
        self.natural = NaturalClock()
        self.working = WorkingClock(self.is_workday, self.hours)

    @classmethod
    def load(cls) -> Calendar:
        """The calendar, checked once per transaction. The days themselves (some 800 rows) are read again only
        when their fingerprint changed, so a sync batch pays one aggregate over the table, not the rows."""
        cache = _cache()
        if "calendar" not in cache:
            key = tuple(db.session.execute(_FINGERPRINT).one())
            store = current_app.extensions.setdefault("gridcase_calendar", {})
            entry = store.get("days")
            if entry is None or entry[0] != key:
                days = db.session.execute(select(CalendarDay.day, CalendarDay.workday)).all()
                entry = store["days"] = (key, dict(days))
            cache["calendar"] = cls(entry[1], configured_office_hours())
        return cache["calendar"]

    def is_workday(self, day: date) -> bool:
        if day in self.overrides:
            return self.overrides[day]
        return day.weekday() < 5

    def clock(self, name: str) -> NaturalClock | WorkingClock:
        """The clock a rule names; ValueError for another name."""
        if name == "natural":
            return self.natural
        if name == "working":
            return self.working
        raise ValueError(f"unknown clock {name!r}")


def calendar_days(start: date, end: date) -> list[CalendarDay]:
    """The days off and make-up workdays from ``start`` to ``end`` (both included), in order."""
    return list(db.session.scalars(select(CalendarDay).where(CalendarDay.day >= start, CalendarDay.day <= end)
                                   .order_by(CalendarDay.day)))


def covered_years() -> set[int]:
    """The years the calendar holds an arrangement for (any day of them in ``calendar_days``)."""
    year = extract("year", CalendarDay.day)
    return {int(y) for y in db.session.scalars(select(year).group_by(year))}


def coverage(today: date | None = None, ahead_days: int = COVERAGE_AHEAD_DAYS) -> dict:
    """Does the calendar know the holidays of the next ``ahead_days``? ``covered_until`` is the last day of
    the run of known years from this one (None when this year is unknown), ``days_ahead`` how far that is."""
    today = today or datetime.now(CHINA).date()
    years = covered_years()
    needed = range(today.year, (today + timedelta(days=ahead_days)).year + 1)
    last = today.year - 1
    while last + 1 in years:
        last += 1
    covered_until = date(last, 12, 31) if last >= today.year else None
    return {"ok": all(y in years for y in needed), "covered_until": covered_until,
            "days_ahead": (covered_until - today).days if covered_until else 0,
            "missing_years": [y for y in needed if y not in years]}


# ---------------------------------------------------------------------------------------------- limits


def rule_for(stage: str, case: Case) -> tuple[int, str]:
    """(minutes, clock) of the most specific rule for this stage, colour, category and level; else the
    defaults."""
    cache = _cache()
    if "sla_rules" not in cache:
        cache["sla_rules"] = [(r.stage, r.risk_level, r.category, r.level, r.limit_minutes, r.clock)
                              for r in db.session.scalars(select(SlaRule))]
    rules = [r for r in cache["sla_rules"] if r[0] == stage and r[1] == case.risk_level
             and r[2] in (None, case.category) and r[3] in (None, case.level)]
    if rules:
        best = max(rules, key=lambda r: (r[2] is not None, r[3] is not None))
        return best[4], best[5]
    return DEFAULT_LIMITS_MIN[(stage, case.risk_level)], DEFAULT_CLOCK[case.risk_level]


def stage_limit(stage: str, case: Case) -> dict:
    """The columns a new stage takes from its rule: ``limit_minutes`` and ``clock``."""
    minutes, clock = rule_for(stage, case)
    return {"limit_minutes": minutes, "clock": clock}


def current_stage(case: Case) -> CaseStage | None:
    """The stage running on the case (the latest started of those not ended), or None."""
    return unit_of_work.current().running_stage(case)


def schedule(stage: CaseStage, case: Case, calendar: Calendar, now: datetime) -> None:
    """Work out the stage's deadline and warning from the time it has left, and copy them onto the case."""
    limit_s = stage.limit_minutes * 60
    if stage.running_since is None:
        stage.due_at = stage.warn_at = None
    else:
        clock = calendar.clock(stage.clock)
        stage.due_at = clock.add(stage.running_since, max(0.0, limit_s - stage.consumed_s))
        stage.warn_at = clock.add(stage.running_since, max(0.0, WARN_FRACTION * limit_s - stage.consumed_s))
    case.stage, case.stage_clock, case.due_at, case.warn_at = stage.stage, stage.clock, stage.due_at, stage.warn_at


def start_stage(case: Case, name: str, now: datetime, calendar: Calendar | None = None) -> CaseStage:
    calendar = calendar or Calendar.load()
    stage = CaseStage(case_id=case.id, stage=name, started_at=now, **stage_limit(name, case),
                      consumed_s=0.0, running_since=None if case.suspended_at else now)
    db.session.add(stage)
    schedule(stage, case, calendar, now)
    return stage


def used_seconds(stage: CaseStage, calendar: Calendar, now: datetime) -> float:
    """Seconds of the stage's clock used so far."""
    running = calendar.clock(stage.clock).seconds(stage.running_since, now) if stage.running_since else 0.0
    return stage.consumed_s + running


def relimit(stage: CaseStage, case: Case, calendar: Calendar, now: datetime) -> None:
    """The stage goes on under the rule that now applies to the case. Time already used stays counted on
    the clock it ran on; from ``now`` on, the new rule's clock counts."""
    minutes, clock = rule_for(stage.stage, case)
    if clock != stage.clock and stage.running_since is not None:
        stage.consumed_s = used_seconds(stage, calendar, now)
        stage.running_since = now
    stage.limit_minutes, stage.clock = minutes, clock
    schedule(stage, case, calendar, now)


def end_stage(case: Case, now: datetime, calendar: Calendar | None = None, *,
              only: str | None = None) -> CaseStage | None:
    """Freeze the running stage's outcome: on time or overdue (``only``: if it is the stage of that name)."""
    stage = current_stage(case)
    if stage is None or only is not None and stage.stage != only:
        return None
    calendar = calendar or Calendar.load()
    used = used_seconds(stage, calendar, now)
    stage.consumed_s = used
    stage.running_since = None
    stage.ended_at = now
    stage.outcome = "overdue" if used > stage.limit_minutes * 60 else "on_time"
    case.stage = case.stage_clock = case.due_at = case.warn_at = None
    return stage


def overdue_hours(stage: CaseStage, case: Case, now: datetime) -> float:
    """How long past its deadline the stage is, in hours of its own clock."""
    return round(Calendar.load().clock(stage.clock).seconds(case.due_at, now) / 3600, 2)


def pause(case: Case, now: datetime) -> None:
    stage = current_stage(case)
    if stage is None or stage.running_since is None:
        return
    calendar = Calendar.load()
    stage.consumed_s = used_seconds(stage, calendar, now)
    stage.running_since = None
    schedule(stage, case, calendar, now)


def resume(case: Case, now: datetime) -> None:
    stage = current_stage(case)
    if stage is None or stage.running_since is not None:
        return
    stage.running_since = now
    schedule(stage, case, Calendar.load(), now)


def light_at(now: datetime, due_at: datetime | None, warn_at: datetime | None,
             stopped_fraction: float | None) -> str | None:
    """The traffic light, the one rule for it: a running clock (``due_at`` set) is red from its deadline,
    yellow from its warning; a stopped clock (suspended) keeps the colour of the share of its limit it had
    used (``stopped_fraction``; None: no timed stage)."""
    if due_at is None:
        if stopped_fraction is None:
            return None
        return "red" if stopped_fraction >= 1 else "yellow" if stopped_fraction >= WARN_FRACTION else "green"
    if now >= due_at:
        return "red"
    if warn_at is not None and now >= warn_at:
        return "yellow"
    return "green"


def light(case: Case, now: datetime) -> str | None:
    """green / yellow / red for an open, timed case (suspended cases keep the colour they had)."""
    stage = current_stage(case) if case.stage else None
    if stage is None:
        return None
    if stage.running_since is None:
        return light_at(now, None, None, stage.consumed_s / (stage.limit_minutes * 60))
    return light_at(now, case.due_at, case.warn_at, None)


def stage_view(case: Case, now: datetime) -> dict | None:
    """The running stage as the case page shows it: its limit, the clock it counts, deadline, light and time
    left on that clock (negative when overdue)."""
    stage = current_stage(case) if case.stage else None
    if stage is None:
        return None
    used = used_seconds(stage, Calendar.load(), now)
    return {"stage": stage.stage, "clock": stage.clock, "limit_minutes": stage.limit_minutes,
            "started_at": stage.started_at.isoformat(), "due_at": case.due_at.isoformat() if case.due_at else None,
            "running": stage.running_since is not None, "light": light(case, now),
            "used_minutes": round(used / 60, 1), "left_minutes": round(stage.limit_minutes - used / 60, 1)}


def overdue_criterion(now: datetime):
    """SQL: open cases past their running stage's deadline."""
    return and_(Case.due_at.is_not(None), Case.due_at <= now)


# ---------------------------------------------------------------------------------------------- effects
# (named in app/cases/workflow.py's EFFECTS, run by app/cases/transitions.py)


def on_limits_changed(case: Case, now: datetime) -> None:
    """The colour, category or level changed: the running stage goes on under its new limit and clock."""
    stage = current_stage(case)
    if stage is not None:
        relimit(stage, case, Calendar.load(), now)


def on_created(case: Case, now: datetime) -> None:
    """A new case starts its first stage: accept, or close for a matter handled on the spot."""
    start_stage(case, "close" if case.state == "resolved" else "accept", now)


def stamp_hours_to_close(case: Case, now: datetime) -> None:
    """Hours from the report to its close-out, in natural hours (``HOURS_TO_CLOSE_CLOCK``)."""
    clock = Calendar.load().clock(HOURS_TO_CLOSE_CLOCK)
    case.hours_to_close = round(clock.seconds(case.reported_at, now) / 3600, 2)
