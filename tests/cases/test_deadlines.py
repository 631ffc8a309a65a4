"""Deadlines in working time: weekends, holidays, make-up workdays, suspension, frozen outcomes, escalation."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from helpers import Phone, new_id, report_op, transition_op
from sqlalchemy import select

from app.cases import deadlines
from app.cases.deadlines import CHINA, Calendar
from app.cases.models import CalendarDay, Case, CaseEvent, CaseStage, SlaRule
from app.extensions import db

UTC = timezone.utc


def cst(y, mo, d, h=0, mi=0):
    return datetime(y, mo, d, h, mi, tzinfo=CHINA)


# 2026: National Day holiday Oct 1-7; make-up workdays Sun Sep 27 and Sat Oct 10.
NATIONAL_DAY = {**{date(2026, 10, d): False for d in range(1, 8)}, date(2026, 9, 27): True,
                date(2026, 10, 10): True}


def test_weekend_is_skipped():
    cal = Calendar({})
    # Friday 18:00 + 8 h: 6 h left on Friday, the weekend does not count, 2 h into Monday
    assert cal.add_working(cst(2026, 11, 20, 18), 8 * 3600) == cst(2026, 11, 23, 2).astimezone(UTC)
    assert cal.working_seconds(cst(2026, 11, 20, 18), cst(2026, 11, 23, 2)) == 8 * 3600


def test_holiday_and_make_up_workday():
    cal = Calendar(NATIONAL_DAY)
    # Saturday Sep 26 is off, Sunday Sep 27 is a make-up workday
    assert cal.add_working(cst(2026, 9, 26, 10), 8 * 3600) == cst(2026, 9, 27, 8).astimezone(UTC)
    # Wednesday Sep 30 20:00 + 24 h: 4 h on Sep 30, Oct 1-7 holiday, Oct 8 (Thu) gives the other 20 h
    assert cal.add_working(cst(2026, 9, 30, 20), 24 * 3600) == cst(2026, 10, 8, 20).astimezone(UTC)
    # across the holiday week, a weekend and the make-up Saturday
    assert cal.working_seconds(cst(2026, 9, 30, 0), cst(2026, 10, 12, 0)) == (1 + 2 + 1) * 86400
    assert Calendar({}).working_seconds(cst(2026, 9, 30, 0), cst(2026, 10, 12, 0)) == 8 * 86400


@pytest.fixture
def worker(client, auth):
    return Phone(client, auth, "wanggeyuan")


@pytest.fixture
def reviewer(client, auth):
    return Phone(client, auth, "reviewer")


def _case(cid):
    return db.session.get(Case, cid)


def test_red_report_gets_a_two_hour_accept_deadline_and_a_light(app, worker):
    cid = worker.one(report_op(risk="red"))["case_id"]
    with app.app_context():
        case = _case(cid)
        cal = Calendar.load()
        assert case.stage == "accept"
        assert case.due_at == cal.add_working(case.reported_at, 2 * 3600)
        assert deadlines.light(case, case.reported_at) == "green"
        assert deadlines.light(case, case.warn_at + timedelta(seconds=1)) == "yellow"
        assert deadlines.light(case, case.due_at + timedelta(seconds=1)) == "red"


def _age(cid, hours):
    """Move a case's running stage back in time by ``hours`` of wall-clock time."""
    case = _case(cid)
    stage = deadlines.current_stage(case)
    shift = timedelta(hours=hours)
    stage.started_at -= shift
    stage.running_since -= shift
    case.reported_at -= shift
    deadlines._schedule(stage, case, Calendar.load(), stage.running_since)
    db.session.commit()


def test_stage_outcome_frozen_on_time_and_overdue(app, worker, reviewer):
    on_time = worker.one(report_op(risk="blue"))["case_id"]
    late = worker.one(report_op(risk="red", category="sanitation"))["case_id"]
    with app.app_context():
        db.session.add(CalendarDay(day=datetime.now(CHINA).date(), workday=True))  # today counts, whatever day
        db.session.add(CalendarDay(day=(datetime.now(CHINA) - timedelta(days=1)).date(), workday=True))
        db.session.commit()
        _age(late, 5)
    reviewer.one(transition_op(on_time, 1, "accept"))
    r = reviewer.one(transition_op(late, 1, "accept"))
    assert r["status"] == "applied"
    with app.app_context():
        outcomes = dict(db.session.execute(select(CaseStage.case_id, CaseStage.outcome)
                                           .where(CaseStage.stage == "accept")).all())
        assert outcomes == {on_time: "on_time", late: "overdue"}
        # the close stage started at acceptance
        assert _case(late).stage == "close" and _case(late).accepted_at is not None


def test_suspension_stops_the_clock(app, worker, reviewer):
    cid = worker.one(report_op(risk="yellow"))["case_id"]
    reviewer.one(transition_op(cid, 1, "accept"))
    with app.app_context():
        due_before = _case(cid).due_at
    r = reviewer.one(transition_op(cid, 2, "suspend", reason="等待业主回复"))
    assert r["status"] == "applied"
    with app.app_context():
        case = _case(cid)
        assert case.due_at is None and deadlines.light(case, datetime.now(UTC)) == "green"
        stage = deadlines.current_stage(case)
        stage.consumed_s = 0  # pretend the suspension lasted: the clock resumes where it stopped
        db.session.commit()
    reviewer.one(transition_op(cid, 3, "resume"))
    with app.app_context():
        assert _case(cid).due_at >= due_before


def test_sla_rules_by_category_and_level_override_defaults(app, worker):
    with app.app_context():
        db.session.add(SlaRule(stage="accept", risk_level="yellow", category="gas_safety", limit_minutes=30))
        db.session.add(SlaRule(stage="accept", risk_level="yellow", category="gas_safety", level="grid",
                               limit_minutes=20))
        db.session.commit()
    gas = worker.one(report_op(category="gas_safety"))["case_id"]
    other = worker.one(report_op(category="sanitation"))["case_id"]
    with app.app_context():
        assert deadlines.current_stage(_case(gas)).limit_minutes == 20
        assert deadlines.current_stage(_case(other)).limit_minutes == 8 * 60


def test_escalate_overdue_twice_is_idempotent(app, runner, worker):
    late = worker.one(report_op(risk="red"))["case_id"]
    fresh = worker.one(report_op(risk="blue", category="sanitation"))["case_id"]
    with app.app_context():
        case = _case(late)
        case.due_at = datetime.now(UTC) - timedelta(minutes=5)
        deadlines.current_stage(case).due_at = case.due_at
        db.session.commit()
    first = runner.invoke(args=["cases", "escalate-overdue"])
    assert first.exit_code == 0, first.output
    assert "escalated 1 " in first.output
    second = runner.invoke(args=["cases", "escalate-overdue"])
    assert "escalated 0 " in second.output
    with app.app_context():
        assert _case(late).level == "village" and _case(fresh).level == "grid"
        event = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == late, CaseEvent.action == "escalate")).all()
        assert len(event) == 1 and event[0].data["reason"] == "overdue" and event[0].actor_id is None
        assert event[0].changes == {"level": ["grid", "village"]}


def test_calendar_import(app, runner, tmp_path):
    f = tmp_path / "2026.csv"
    f.write_text("# 2026 国庆\n2026-10-01,holiday,国庆节\n2026-09-27,班,国庆调休\n", encoding="utf-8")
    result = runner.invoke(args=["calendar", "import", str(f)])
    assert result.exit_code == 0, result.output
    with app.app_context():
        cal = Calendar.load()
        assert not cal.is_workday(date(2026, 10, 1)) and cal.is_workday(date(2026, 9, 27))
    bad = tmp_path / "bad.csv"
    bad.write_text("2026-13-01,holiday\n", encoding="utf-8")
    result = runner.invoke(args=["calendar", "import", str(bad)])
    assert result.exit_code != 0 and "line 1" in result.output
    assert new_id()
