"""Deadlines: each stage of a case is timed on its own, in working time, and its outcome is frozen when
it ends.

Stages: ``accept`` (from the report, or its resubmission, until it is accepted, returned, rejected or
merged) and ``close`` (from acceptance, or a report handled on the spot, until close-out). Limits come
from ``sla_rules`` (by stage and risk colour, optionally narrowed to a category and a handling level),
falling back to DESIGN.md's defaults. Working time is the time of working days in China Standard Time:
Monday to Friday, except the holidays and make-up workdays (调休) kept in ``calendar_days``. A suspended
case (挂起) stops its clock. The light of an open case: green under 80 % of its limit, yellow from 80 %,
red when overdue.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import and_, select

from app.cases.models import CalendarDay, Case, CaseStage, SlaRule
from app.extensions import db

CHINA = timezone(timedelta(hours=8))
DAY_S = 86_400
WARN_FRACTION = 0.8
MAX_SCAN_DAYS = 3 * 366  # a limit never spans more than this; guards a loop against a bad calendar

DEFAULT_LIMITS_MIN = {
    ("accept", "red"): 2 * 60, ("accept", "yellow"): 8 * 60, ("accept", "blue"): 24 * 60,
    ("close", "red"): 24 * 60, ("close", "yellow"): 72 * 60, ("close", "blue"): 7 * 24 * 60,
}
STAGE_ENDS = {
    "accept": ("accept", "return", "reject", "merge"),
    "close": ("verify_close", "reject", "merge"),
}


# ---------------------------------------------------------------------------------------------- calendar


def _cache() -> dict:
    from app.cases.services import changes

    return changes().cache


class Calendar:
    """Which days are working days: Monday-Friday, unless the database says otherwise."""

    def __init__(self, overrides: dict[date, bool]):
        self.overrides = overrides

    @classmethod
    def load(cls) -> Calendar:
        """The calendar, read once per transaction."""
        cache = _cache()
        if "calendar" not in cache:
            cache["calendar"] = cls({d.day: d.workday for d in db.session.scalars(select(CalendarDay))})
        return cache["calendar"]

    def is_workday(self, day: date) -> bool:
        if day in self.overrides:
            return self.overrides[day]
        return day.weekday() < 5

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Working seconds between two instants."""
        if end <= start:
            return 0.0
        start, end = start.astimezone(CHINA), end.astimezone(CHINA)
        total = 0.0
        day = start.date()
        while day <= end.date():
            if self.is_workday(day):
                day_start = datetime.combine(day, time(0), CHINA)
                lo = max(start, day_start)
                hi = min(end, day_start + timedelta(days=1))
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def add_working(self, start: datetime, seconds: float) -> datetime:
        """The instant when ``seconds`` of working time after ``start`` have passed."""
        current = start.astimezone(CHINA)
        remaining = seconds
        for _ in range(MAX_SCAN_DAYS):
            day_end = datetime.combine(current.date(), time(0), CHINA) + timedelta(days=1)
            if self.is_workday(current.date()):
                available = (day_end - current).total_seconds()
                if remaining <= available:
                    return (current + timedelta(seconds=remaining)).astimezone(timezone.utc)
                remaining -= available
            current = day_end
        raise ValueError("deadline beyond the calendar's reach")


# ---------------------------------------------------------------------------------------------- limits


def limit_minutes(stage: str, case: Case) -> int:
    """The most specific rule for this stage, colour, category and level; else the default."""
    cache = _cache()
    if "sla_rules" not in cache:
        cache["sla_rules"] = [(r.stage, r.risk_level, r.category, r.level, r.limit_minutes)
                              for r in db.session.scalars(select(SlaRule))]
    rules = [r for r in cache["sla_rules"] if r[0] == stage and r[1] == case.risk_level
             and r[2] in (None, case.category) and r[3] in (None, case.level)]
    if rules:
        return max(rules, key=lambda r: (r[2] is not None, r[3] is not None))[4]
    return DEFAULT_LIMITS_MIN[(stage, case.risk_level)]


def current_stage(case: Case) -> CaseStage | None:
    return db.session.scalars(select(CaseStage).where(CaseStage.case_id == case.id, CaseStage.ended_at.is_(None))
                              .order_by(CaseStage.started_at.desc())).first()


def _schedule(stage: CaseStage, case: Case, calendar: Calendar, now: datetime) -> None:
    limit_s = stage.limit_minutes * 60
    if stage.running_since is None:
        stage.due_at = stage.warn_at = None
    else:
        stage.due_at = calendar.add_working(stage.running_since, max(0.0, limit_s - stage.consumed_s))
        stage.warn_at = calendar.add_working(stage.running_since,
                                             max(0.0, WARN_FRACTION * limit_s - stage.consumed_s))
    case.stage, case.due_at, case.warn_at = stage.stage, stage.due_at, stage.warn_at


def start_stage(case: Case, name: str, now: datetime, calendar: Calendar | None = None) -> CaseStage:
    calendar = calendar or Calendar.load()
    stage = CaseStage(case_id=case.id, stage=name, started_at=now, limit_minutes=limit_minutes(name, case),
                      consumed_s=0.0, running_since=None if case.suspended_at else now)
    db.session.add(stage)
    _schedule(stage, case, calendar, now)
    return stage


def used_seconds(stage: CaseStage, calendar: Calendar, now: datetime) -> float:
    running = calendar.working_seconds(stage.running_since, now) if stage.running_since else 0.0
    return stage.consumed_s + running


def end_stage(case: Case, now: datetime, calendar: Calendar | None = None) -> CaseStage | None:
    """Freeze the running stage's outcome: on time or overdue."""
    stage = current_stage(case)
    if stage is None:
        return None
    calendar = calendar or Calendar.load()
    used = used_seconds(stage, calendar, now)
    stage.consumed_s = used
    stage.running_since = None
    stage.ended_at = now
    stage.outcome = "overdue" if used > stage.limit_minutes * 60 else "on_time"
    case.stage = case.due_at = case.warn_at = None
    return stage


def pause(case: Case, now: datetime) -> None:
    stage = current_stage(case)
    if stage is None or stage.running_since is None:
        return
    calendar = Calendar.load()
    stage.consumed_s = used_seconds(stage, calendar, now)
    stage.running_since = None
    _schedule(stage, case, calendar, now)


def resume(case: Case, now: datetime) -> None:
    stage = current_stage(case)
    if stage is None or stage.running_since is not None:
        return
    stage.running_since = now
    _schedule(stage, case, Calendar.load(), now)


def light(case: Case, now: datetime) -> str | None:
    """green / yellow / red for an open, timed case (suspended cases keep the colour they had)."""
    stage = current_stage(case) if case.stage else None
    if stage is None:
        return None
    if stage.running_since is None:
        fraction = stage.consumed_s / (stage.limit_minutes * 60)
    elif case.due_at is not None and now >= case.due_at:
        return "red"
    elif case.warn_at is not None and now >= case.warn_at:
        return "yellow"
    else:
        return "green"
    return "red" if fraction >= 1 else "yellow" if fraction >= WARN_FRACTION else "green"


def overdue_criterion(now: datetime):
    """SQL: open cases past their running stage's deadline."""
    return and_(Case.due_at.is_not(None), Case.due_at <= now)


# ---------------------------------------------------------------------------------------------- hooks


def on_limits_changed(case: Case, now: datetime) -> None:
    """The colour, category or level changed: the running stage goes on under its new limit."""
    stage = current_stage(case)
    if stage is not None:
        stage.limit_minutes = limit_minutes(stage.stage, case)
        _schedule(stage, case, Calendar.load(), now)


def on_created(case: Case, now: datetime) -> None:
    """A new case starts its first stage: accept, or close for a matter handled on the spot."""
    start_stage(case, "close" if case.state == "resolved" else "accept", now)


def on_transition(actor, case: Case, row, changes: dict, data: dict) -> None:
    """Runs inside every transition (app.cases.hooks): ends, starts, pauses and resumes the clocks."""
    now = actor.now
    action = row.action
    if action == "suspend":
        pause(case, now)
        return
    if action == "resume":
        resume(case, now)
        return
    if action == "escalate":
        on_limits_changed(case, now)  # the limits may differ by level
        return
    calendar = Calendar.load()
    stage = current_stage(case)
    if stage is not None and action in STAGE_ENDS.get(stage.stage, ()):
        ended = end_stage(case, now, calendar)
        data.setdefault("stage_outcome", {})[ended.stage] = ended.outcome
    if action == "accept":
        case.accepted_at = now
        start_stage(case, "close", now, calendar)
    elif action == "resubmit":
        start_stage(case, "accept", now, calendar)
    elif action == "reopen":
        start_stage(case, "close", now, calendar)
    if action == "verify_close":
        case.hours_to_close = round(calendar.working_seconds(case.reported_at, now) / 3600, 2)
    elif action == "reopen":
        case.hours_to_close = None
