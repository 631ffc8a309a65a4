"""Volunteer points (积分制): earned on acceptance by colour, taken back on merge or reject; GET /api/v1/points."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from factories import TOWN_A, TOWN_B
from helpers import Phone, report_op, transition_op
from sqlalchemy import select, update

from app.stats.points import POINTS_BY_RISK


@pytest.fixture
def phones(client, auth):
    return {name: Phone(client, auth, name) for name in
            ("zhiyuanzhe", "volunteer_a2", "wanggeyuan", "reviewer", "reviewer_b", "volunteer_b")}


def report(phone, risk="yellow", **kwargs) -> str:
    result = phone.one(report_op(risk=risk, **kwargs))
    assert result["status"] == "applied", result
    return result["case_id"]


def act(phone, case_id, version, action, **params) -> dict:
    result = phone.one(transition_op(case_id, version, action, **params))
    assert result["status"] == "applied", result
    return result


def ledger(app, case_id=None):
    from app.cases.models import PointsEntry
    from app.extensions import db

    with app.app_context():
        stmt = select(PointsEntry.case_id, PointsEntry.points, PointsEntry.reason).order_by(PointsEntry.id)
        if case_id:
            stmt = stmt.where(PointsEntry.case_id == case_id)
        return [tuple(r) for r in db.session.execute(stmt)]


def points(client, phone, query="", status=200):
    response = client.get(f"/api/v1/points?{query}", headers=phone.headers)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def test_acceptance_earns_points_by_colour(app, client, phones):
    vol, rev = phones["zhiyuanzhe"], phones["reviewer"]
    ids = {risk: report(vol, risk=risk) for risk in ("red", "yellow", "blue")}
    for case_id in ids.values():
        act(rev, case_id, 1, "accept")
    assert POINTS_BY_RISK == {"red": 10, "yellow": 5, "blue": 2}
    assert ledger(app) == [(ids["red"], 10, "accepted"), (ids["yellow"], 5, "accepted"), (ids["blue"], 2, "accepted")]
    own = points(client, vol)
    assert (own["points"], own["total"], own["confirmed_reports"]) == (17, 17, 3)
    assert [(e["case_id"], e["points"], e["reason"]) for e in own["entries"]] == [
        (ids["blue"], 2, "accepted"), (ids["yellow"], 5, "accepted"), (ids["red"], 10, "accepted")]
    assert all(e["case_number"] for e in own["entries"])


def test_merge_or_reject_after_acceptance_takes_the_points_back(app, client, phones):
    vol, rev = phones["zhiyuanzhe"], phones["reviewer"]
    survivor = report(vol, risk="blue", category="sanitation")
    rejected = report(vol, risk="yellow")
    merged = report(vol, risk="red", category="gas_safety")
    for case_id in (survivor, rejected, merged):
        act(rev, case_id, 1, "accept")
    act(rev, rejected, 2, "reject", reason="核实后不属实")
    act(rev, merged, 2, "merge", target=survivor)
    assert ledger(app, rejected) == [(rejected, 5, "accepted"), (rejected, -5, "rejected")]
    assert ledger(app, merged) == [(merged, 10, "accepted"), (merged, -10, "merged")]
    own = points(client, vol)
    assert (own["points"], own["total"], own["confirmed_reports"]) == (2, 2, 1)


def test_merge_or_reject_before_acceptance_never_earned_any(app, client, phones):
    vol, rev = phones["zhiyuanzhe"], phones["reviewer"]
    survivor = report(vol, risk="blue", category="sanitation")
    act(rev, report(vol, risk="red"), 1, "reject", reason="重复")
    act(rev, report(vol, risk="red", category="road_safety"), 1, "merge", target=survivor)
    assert ledger(app) == []
    assert points(client, vol)["entries"] == []


def test_accepted_again_after_a_return_earns_once(app, client, phones):
    vol, rev = phones["zhiyuanzhe"], phones["reviewer"]
    case_id = report(vol, risk="red")
    act(rev, case_id, 1, "accept")
    act(rev, case_id, 2, "return", reason="请补充照片")
    act(vol, case_id, 3, "resubmit")
    act(rev, case_id, 4, "accept")
    assert ledger(app) == [(case_id, 10, "accepted")]


def test_only_volunteers_earn(app, phones):
    case_id = report(phones["wanggeyuan"], risk="red")
    act(phones["reviewer"], case_id, 1, "accept")
    assert ledger(app) == []


def test_the_points_are_on_the_case_timeline(client, phones):
    case_id = report(phones["zhiyuanzhe"], risk="yellow")
    act(phones["reviewer"], case_id, 1, "accept")
    page = client.get(f"/api/v1/cases/{case_id}", headers=phones["reviewer"].headers).get_json()
    events = [e for e in page["timeline"] if e.get("action") == "transition"]
    assert events and events[-1]["data"]["points"] == {"user": "zhiyuanzhe", "points": 5, "reason": "accepted"}


def test_leaderboard_in_scope(app, client, auth, phones):
    rev = phones["reviewer"]
    for risk in ("red", "blue"):
        act(rev, report(phones["zhiyuanzhe"], risk=risk), 1, "accept")
    act(rev, report(phones["volunteer_a2"], risk="red", category="sanitation"), 1, "accept")
    rejected = report(phones["volunteer_a2"], risk="yellow", category="road_safety")
    act(rev, rejected, 1, "accept")
    act(rev, rejected, 2, "reject", reason="不属实")
    act(phones["reviewer_b"], report(phones["volunteer_b"], risk="red", micro_grid="3303810020010101", lat=None,
                                     location=None), 1, "accept")

    board = points(client, rev)
    assert board == [
        {"username": "zhiyuanzhe", "display_name": "李志愿者", "points": 12, "confirmed_reports": 2},
        {"username": "volunteer_a2", "display_name": "volunteer_a2", "points": 10, "confirmed_reports": 1},
    ]
    assert points(client, Phone(client, auth, "village_reviewer")) == board  # the village holds both
    assert points(client, Phone(client, auth, "admin"), f"region={TOWN_A}") == board
    admin_all = points(client, Phone(client, auth, "admin"))
    assert [r["username"] for r in admin_all] == ["zhiyuanzhe", "volunteer_a2", "volunteer_b"]  # ties by name
    assert points(client, phones["reviewer_b"]) == [
        {"username": "volunteer_b", "display_name": "volunteer_b", "points": 10, "confirmed_reports": 1}]
    assert points(client, rev, f"region={TOWN_B}", status=404)["code"] == "not_found"
    assert points(client, phones["reviewer_b"], f"region={TOWN_A}", status=404)["code"] == "not_found"
    assert points(client, rev, "limit=1") == board[:1]


def test_a_volunteer_sees_only_their_own(client, phones):
    act(phones["reviewer"], report(phones["zhiyuanzhe"], risk="red"), 1, "accept")
    other = points(client, phones["volunteer_a2"])
    assert (other["username"], other["points"], other["total"], other["entries"]) == ("volunteer_a2", 0, 0, [])
    assert "zhiyuanzhe" not in str(other)
    assert points(client, phones["volunteer_b"], f"region={TOWN_A}", status=404)["code"] == "not_found"


def test_grid_workers_have_no_points_page(client, phones):
    assert points(client, phones["wanggeyuan"], status=403)["code"] == "forbidden"


def test_the_period_counts_what_was_earned_in_it(app, client, phones):
    from app.cases.models import PointsEntry
    from app.extensions import db

    vol, rev = phones["zhiyuanzhe"], phones["reviewer"]
    october = report(vol, risk="red")
    november = report(vol, risk="yellow")
    act(rev, october, 1, "accept")
    act(rev, november, 1, "accept")
    act(rev, november, 2, "reject", reason="不属实")
    with app.app_context():
        db.session.execute(update(PointsEntry).where(PointsEntry.case_id == october)
                           .values(at=datetime(2026, 10, 10, tzinfo=timezone.utc)))
        db.session.execute(update(PointsEntry).where(PointsEntry.case_id == november, PointsEntry.reason == "accepted")
                           .values(at=datetime(2026, 10, 20, tzinfo=timezone.utc)))
        db.session.execute(update(PointsEntry).where(PointsEntry.case_id == november, PointsEntry.reason == "rejected")
                           .values(at=datetime(2026, 11, 2, tzinfo=timezone.utc)))
        db.session.commit()
    october_only = "from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z"
    own = points(client, vol, october_only)
    assert (own["points"], own["confirmed_reports"], own["total"], len(own["entries"])) == (15, 2, 10, 2)
    board = points(client, rev, october_only)
    assert board[0] == {"username": "zhiyuanzhe", "display_name": "李志愿者", "points": 15, "confirmed_reports": 2}
    november_only = "from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z"
    assert points(client, rev, november_only)[0]["points"] == 0
    assert points(client, rev, november_only)[-1] == {
        "username": "zhiyuanzhe", "display_name": "李志愿者", "points": -5, "confirmed_reports": -1}
