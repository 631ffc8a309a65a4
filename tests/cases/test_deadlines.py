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


# 2026 (国办发明电 of November 2025): 中秋节 Sep 25-27, 国庆节 Oct 1-7; make-up workdays Sun Sep 20, Sat Oct 10.
NATIONAL_DAY = {**{date(2026, 9, d): False for d in (25, 26, 27)}, **{date(2026, 10, d): False for d in range(1, 8)},
                date(2026, 9, 20): True, date(2026, 10, 10): True}
OFFICE_DAY_S = 7 * 3600  # 08:30-12:00 and 14:00-17:30


def test_weekend_is_skipped_and_only_office_hours_count():
    cal = Calendar({})
    # Friday 16:00 + 8 office hours: 1.5 h on Friday, the weekend does not count, 6.5 h into Monday: 17:00
    assert cal.working.add(cst(2026, 11, 20, 16), 8 * 3600) == cst(2026, 11, 23, 17).astimezone(UTC)
    assert cal.working.seconds(cst(2026, 11, 20, 16), cst(2026, 11, 23, 17)) == 8 * 3600
    # the lunch break and the night do not count; natural time does
    assert cal.working.add(cst(2026, 11, 23, 11, 30), 3600) == cst(2026, 11, 23, 14, 30).astimezone(UTC)
    assert cal.working.add(cst(2026, 11, 23, 20), 60) == cst(2026, 11, 24, 8, 31).astimezone(UTC)
    assert cal.natural.add(cst(2026, 11, 20, 16), 8 * 3600) == cst(2026, 11, 21, 0).astimezone(UTC)


def test_holiday_and_make_up_workday():
    cal = Calendar(NATIONAL_DAY)
    # Saturday Sep 19 is off, Sunday Sep 20 is a make-up workday
    assert cal.working.add(cst(2026, 9, 19, 10), 3600) == cst(2026, 9, 20, 9, 30).astimezone(UTC)
    # Wednesday Sep 30 16:00 + 7 office hours: 1.5 h on Sep 30, Oct 1-7 holiday, Thursday Oct 8 gives the rest
    assert cal.working.add(cst(2026, 9, 30, 16), 7 * 3600) == cst(2026, 10, 8, 16).astimezone(UTC)
    # across the holiday week, a weekend and the make-up Saturday: Sep 30, Oct 8, 9 and 10
    assert cal.working.seconds(cst(2026, 9, 30, 0), cst(2026, 10, 12, 0)) == 4 * OFFICE_DAY_S
    assert Calendar({}).working.seconds(cst(2026, 9, 30, 0), cst(2026, 10, 12, 0)) == 8 * OFFICE_DAY_S
    # the Mid-Autumn Festival ends on Sunday Sep 27: a holiday, not a make-up workday
    assert not cal.is_workday(date(2026, 9, 27))


def test_the_loaded_calendar_is_the_state_councils(app_ctx):
    cal = Calendar.load()
    for day, workday in NATIONAL_DAY.items():
        assert cal.is_workday(day) is workday, day
    # 2025: Spring Festival Jan 28 - Feb 4 with Sun Jan 26 and Sat Feb 8 worked; National Day Oct 1-8 with
    # Sun Sep 28 and Sat Oct 11 worked
    assert [d for d in (date(2025, 1, 26), date(2025, 2, 8), date(2025, 9, 28), date(2025, 10, 11))
            if not cal.is_workday(d)] == []
    assert [d for d in (date(2025, 1, 28), date(2025, 2, 4), date(2025, 10, 8)) if cal.is_workday(d)] == []
    assert db.session.get(CalendarDay, date(2026, 10, 10)).name == "国庆节调休上班"
    assert db.session.get(CalendarDay, date(2026, 9, 27)).name == "中秋节"


@pytest.fixture
def worker(client, auth):
    return Phone(client, auth, "wanggeyuan")


@pytest.fixture
def reviewer(client, auth):
    return Phone(client, auth, "reviewer")


def _case(cid):
    return db.session.get(Case, cid)


def test_red_report_gets_a_two_hour_accept_deadline_in_natural_time_and_a_light(app, worker):
    cid = worker.one(report_op(risk="red"))["case_id"]
    with app.app_context():
        case = _case(cid)
        assert case.stage == "accept" and case.stage_clock == "natural"
        assert case.due_at == case.reported_at + timedelta(hours=2)
        assert deadlines.light(case, case.reported_at) == "green"
        assert deadlines.light(case, case.warn_at + timedelta(seconds=1)) == "yellow"
        assert deadlines.light(case, case.due_at + timedelta(seconds=1)) == "red"


def test_yellow_report_counts_working_time_and_says_so(app, client, auth, worker):
    cid = worker.one(report_op(risk="yellow"))["case_id"]
    with app.app_context():
        case = _case(cid)
        stage = deadlines.current_stage(case)
        assert (stage.clock, stage.limit_minutes, case.stage_clock) == ("working", 140, "working")
        assert case.due_at == Calendar.load().working.add(case.reported_at, 140 * 60)
        assert case.due_at - case.reported_at >= timedelta(minutes=140)  # office time only: never sooner
    headers = auth.headers("reviewer")
    page = client.get(f"/api/v1/cases/{cid}", headers=headers).get_json()
    assert page["running_stage"]["clock"] == "working" and page["running_stage"]["limit_minutes"] == 140
    assert page["running_stage"]["light"] == "green" and 139 <= page["running_stage"]["left_minutes"] <= 140
    items = client.get("/api/v1/cases?limit=200", headers=headers).get_json()
    assert [i["clock"] for i in items if i["id"] == cid] == ["working"]


def _age(cid, hours):
    """Move a case's running stage back in time by ``hours`` of wall-clock time."""
    case = _case(cid)
    stage = deadlines.current_stage(case)
    shift = timedelta(hours=hours)
    stage.started_at -= shift
    stage.running_since -= shift
    case.reported_at -= shift
    deadlines.schedule(stage, case, Calendar.load(), stage.running_since)
    db.session.commit()


def test_stage_outcome_frozen_on_time_and_overdue(app, worker, reviewer):
    on_time = worker.one(report_op(risk="blue"))["case_id"]
    late = worker.one(report_op(risk="red", category="sanitation"))["case_id"]
    with app.app_context():
        _age(late, 5)  # red counts natural time: 5 h past a 2 h limit, whatever day and hour it is
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
        assert deadlines.current_stage(_case(other)).limit_minutes == 140


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
        assert event[0].data["clock"] == "natural" and 0.08 <= event[0].data["overdue_hours"] <= 0.1


def test_calendar_import(app, runner, tmp_path):
    with app.app_context():  # as if an earlier import had it wrong
        db.session.get(CalendarDay, date(2026, 10, 10)).workday = False
        db.session.commit()
    f = tmp_path / "2026.csv"
    f.write_text("# 2026 国庆\n2026-10-01,holiday,国庆节\n2026-10-10,班,国庆节调休上班\n2027-01-01,休,元旦\n",
                 encoding="utf-8")
    result = runner.invoke(args=["calendar", "import", str(f)])
    assert result.exit_code == 0, result.output
    assert "imported 3 day(s)" in result.output
    with app.app_context():
        cal = Calendar.load()
        assert not cal.is_workday(date(2026, 10, 1)) and cal.is_workday(date(2026, 10, 10))
        assert not cal.is_workday(date(2027, 1, 1))
    bad = tmp_path / "bad.csv"
    bad.write_text("2026-13-01,holiday\n", encoding="utf-8")
    result = runner.invoke(args=["calendar", "import", str(bad)])
    assert result.exit_code != 0 and "line 1" in result.output
    assert new_id()


def test_outcome_is_judged_on_the_stages_own_clock(app, worker):
    """The eve of the National Day week 2026 to the Thursday after: 2 office hours, 7 days 17 h of natural time."""
    yellow = worker.one(report_op(risk="yellow"))["case_id"]
    red = worker.one(report_op(risk="red", category="sanitation"))["case_id"]
    with app.app_context():
        outcomes = {}
        for cid in (yellow, red):
            case = _case(cid)
            stage = deadlines.current_stage(case)
            stage.running_since = cst(2026, 9, 30, 16)
            ended = deadlines.end_stage(case, cst(2026, 10, 8, 9).astimezone(UTC))
            outcomes[cid] = (ended.clock, ended.outcome, ended.consumed_s)
        assert outcomes[yellow] == ("working", "on_time", 2 * 3600)  # 16:00-17:30 and 08:30-09:00
        assert outcomes[red] == ("natural", "overdue", 8 * 86400 - 7 * 3600)
        db.session.rollback()


def test_a_new_colour_brings_its_clock_and_time_used_stays_counted(app, worker):
    cid = worker.one(report_op(risk="yellow"))["case_id"]
    with app.app_context():
        case = _case(cid)
        stage = deadlines.current_stage(case)
        stage.running_since = cst(2026, 11, 23, 8, 30)  # a Monday
        case.risk_level = "red"
        now = cst(2026, 11, 23, 9, 30).astimezone(UTC)
        deadlines.relimit(stage, case, Calendar.load(), now)
        # one office hour used under the yellow rule; the red rule's 2 h go on in natural time from 09:30
        assert (stage.clock, stage.limit_minutes, stage.consumed_s) == ("natural", 120, 3600)
        assert case.due_at == cst(2026, 11, 23, 10, 30).astimezone(UTC) and case.stage_clock == "natural"
        db.session.rollback()


def test_hours_to_close_are_natural_hours(app, client, auth, worker):
    cid = worker.one(report_op(risk="blue", handled_on_spot=True))["case_id"]
    with app.app_context():
        _age(cid, 30)
    reviewer = Phone(client, auth, "reviewer")
    assert reviewer.one(transition_op(cid, 1, "verify_close"))["status"] == "applied"
    with app.app_context():
        assert 30.0 <= _case(cid).hours_to_close <= 30.1  # whatever weekdays and nights the 30 hours held
    stats = client.get("/api/v1/stats?region=330381001", headers=auth.headers("reviewer")).get_json()
    assert (stats["hours_to_close_clock"], stats["on_time_clock"]) == ("natural", "rule")


def test_the_calendar_is_read_again_when_a_day_moves(app_ctx):
    from app.cases.unit_of_work import discard as discard_changes

    assert Calendar.load().is_workday(date(2026, 9, 20))
    discard_changes()
    # the same number of days and of workdays: a make-up day moved from Sunday 20 to Saturday 19 September
    db.session.delete(db.session.get(CalendarDay, date(2026, 9, 20)))
    db.session.add(CalendarDay(day=date(2026, 9, 19), workday=True, name="国庆节调休上班"))
    db.session.commit()
    cal = Calendar.load()
    assert cal.is_workday(date(2026, 9, 19)) and not cal.is_workday(date(2026, 9, 20))
