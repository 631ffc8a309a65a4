"""GET /api/v1/stats on a hand-built set of cases whose every figure is known.

The cases are created and moved through the workflow by the same services the sync uses; then their
times (reported, accepted, closed, stage ends), hours to close and deadlines are set in the database, so
that each figure below can be worked out by hand (see the table in ``town``).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from factories import GRID_A1, GRID_A2, MICRO_A1_1, MICRO_A1_2, MICRO_A2_1, MICRO_B1_1, TOWN_A, TOWN_B, VILLAGE_A1
from sqlalchemy import select

MICRO_A2V_1 = "3303810010020101"  # 虹桥社区 (the township's second village)
VILLAGE_A2 = "330381001002"

PERIOD = "from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z"
NARROW = "from=2026-10-04T00:00:00Z&to=2026-10-09T00:00:00Z"


def at(day: int, hour: int = 2, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=timezone.utc)


# name: (reporter, micro-grid, category, colour, reported, actions, closed, hours to close, overdue stages)
#   c1 closed at grid level; c2 escalated to the village then closed; c3 accepted and overdue; c4 rejected
#   before acceptance; c5 handled on the spot; c6 closed after the period; c7 reported before the period and
#   closed in it; c8 waiting for review; c9 in township B.
CASES = {
    "c1": ("reviewer", MICRO_A1_1, "fire_hazard", "red", at(2), ["accept", "assign", "start", "resolve",
                                                                  "verify_close"], at(5), 10.0, ()),
    "c2": ("reviewer", MICRO_A1_2, "sanitation", "yellow", at(3), ["accept", "escalate", "assign", "resolve",
                                                                    "verify_close"], at(10), 30.0, ("close",)),
    "c3": ("reviewer", MICRO_A2_1, "fire_hazard", "blue", at(4), ["accept"], None, None, ()),
    "c4": ("reviewer", MICRO_A2V_1, "road_safety", "yellow", at(5), ["reject"], None, None, ("accept",)),
    "c5": ("wanggeyuan", MICRO_A1_1, "fire_hazard", "blue", at(6), ["verify_close"], at(6, 4), 2.0, ()),
    "c6": ("reviewer", MICRO_A1_1, "public_order", "red", at(20), ["accept", "assign", "resolve", "verify_close"],
           at(3, month=11), 50.0, ()),
    "c7": ("reviewer", MICRO_A1_1, "fire_hazard", "yellow", at(15, month=9), ["accept", "assign", "resolve",
                                                                               "verify_close"], at(8), 20.0, ()),
    "c8": ("reviewer", MICRO_A1_2, "sanitation", "blue", at(10), [], None, None, ()),
    "c9": ("reviewer_b", MICRO_B1_1, "fire_hazard", "red", at(5), ["accept", "assign", "resolve", "verify_close"],
           at(6), 5.0, ()),
}


def _params(action: str) -> dict:
    if action == "assign":
        return {"unit": "消防中队"}
    if action == "resolve":
        return {"note": {"id": str(uuid.uuid4()), "text": "已整改完毕", "photos": []}}
    if action == "reject":
        return {"reason": "不属于受理范围"}
    return {}


@pytest.fixture
def town(app):
    """Build the cases of CASES; returns their ids by name."""
    from app.cases import reports, transitions, unit_of_work
    from app.cases.actions import Actor
    from app.cases.models import CaseStage
    from app.devices.models import Device
    from app.extensions import db
    from app.users.models import User

    ids = {}
    with app.app_context():
        users = {u.username: u for u in db.session.scalars(select(User))}
        for name, (reporter, micro, category, colour, reported, actions, closed, hours, late) in CASES.items():
            actor = Actor(user=users[reporter])
            report = {"id": str(uuid.uuid4()), "category": category, "risk_level": colour,
                      "description": f"测试事件 {name}", "micro_grid_id": micro, "location": None,
                      "handled_on_spot": name == "c5"}
            case, _ = reports.create_case(actor, report)
            reviewer = users["reviewer_b" if name == "c9" else "reviewer"]
            for action in actions:
                transitions.transition(Actor(user=reviewer), case, action, case.version, _params(action))
            unit_of_work.finish()
            db.session.flush()
            case.reported_at = reported
            if case.accepted_at is not None:
                case.accepted_at = reported + timedelta(hours=1)
            case.closed_at, case.hours_to_close = closed, hours
            if name == "c3":
                case.due_at = at(20)  # the close stage ran out long ago
            for stage in db.session.scalars(select(CaseStage).where(CaseStage.case_id == case.id)):
                if stage.ended_at is None:
                    continue
                stage.ended_at = reported + timedelta(hours=1) if stage.stage == "accept" else closed
                stage.outcome = "overdue" if stage.stage in late else "on_time"
            ids[name] = case.id
        # Phones holding unsent reports: one in grid A1, one in township B; one in A1 has sent everything.
        db.session.add_all([
            Device(id="stats-phone-a1-0001", user_id=users["wanggeyuan"].id, outbox_pending=3),
            Device(id="stats-phone-a1-0002", user_id=users["zhiyuanzhe"].id, outbox_pending=0),
            Device(id="stats-phone-b1-0001", user_id=users["worker_b"].id, outbox_pending=2)])
        db.session.commit()
    return ids


def get_stats(client, auth, username="reviewer", query=PERIOD, status=200):
    response = client.get(f"/api/v1/stats?{query}", headers=auth.headers(username))
    assert response.status_code == status, response.get_json()
    return response.get_json()


STATES_ZERO = dict.fromkeys(["reported", "accepted", "assigned", "in_progress", "resolved", "closed", "returned",
                             "rejected", "merged"], 0)


def test_township_figures(client, auth, town):
    s = get_stats(client, auth)
    assert s["region"] == {"code": TOWN_A, "name": "安阳街道", "level": "township"}
    assert s["from"] == "2026-10-01T00:00:00+00:00" and s["to"] == "2026-11-01T00:00:00+00:00"
    assert s["total"] == 7  # c1-c6, c8
    assert s["by_state"] == {**STATES_ZERO, "closed": 4, "accepted": 1, "rejected": 1, "reported": 1}
    assert s["by_risk"] == {"red": 2, "yellow": 2, "blue": 3}
    assert s["open_by_risk"] == {"red": 0, "yellow": 0, "blue": 2}
    assert s["by_category"] == [
        {"category": "fire_hazard", "name": "消防隐患", "count": 3, "open": 1},
        {"category": "public_order", "name": "治安隐患", "count": 1, "open": 0},
        {"category": "road_safety", "name": "道路交通安全", "count": 1, "open": 0},
        {"category": "sanitation", "name": "环境卫生", "count": 2, "open": 1},
    ]
    # accepted: c1 c2 c3 c6 and c5 (handled on the spot); closed: c1 c2 c5 c6
    assert (s["accepted"], s["closed"], s["close_out_rate"]) == (5, 4, 0.8)
    # stages ended in October: c1 ×2, c2 ×2 (close late), c3, c4 (late), c5, c6 accept, c7 close
    assert (s["stages_ended"], s["on_time_rate"]) == (9, 0.7778)
    # closed in October: c1 (grid, 10 h), c2 (village, 30 h), c5 (grid, 2 h), c7 (grid, 20 h)
    assert (s["closed_in_period"], s["grid_resolution_rate"]) == (4, 0.75)
    assert s["median_hours_to_close"] == 15.0  # between 10 and 20
    assert s["p90_hours_to_close"] == 27.0  # 20 + 0.7 × (30 - 20), as percentile_cont
    assert s["overdue"] == 1  # c3
    assert s["devices_with_unsent"] == 1
    assert s["by_region"] == [
        {"code": VILLAGE_A1, "name": "万松社区", "total": 6, "open": 2, "accepted": 5, "closed": 4,
         "close_out_rate": 0.8},
        {"code": VILLAGE_A2, "name": "虹桥社区", "total": 1, "open": 0, "accepted": 0, "closed": 0,
         "close_out_rate": None},
        {"code": "330381001003", "name": "新湖社区", "total": 0, "open": 0, "accepted": 0, "closed": 0,
         "close_out_rate": None},
        {"code": "330381001004", "name": "隆山社区", "total": 0, "open": 0, "accepted": 0, "closed": 0,
         "close_out_rate": None},
    ]


def test_grid_figures(client, auth, town):
    s = get_stats(client, auth, query=f"region={GRID_A1}&{PERIOD}")
    assert s["region"]["code"] == GRID_A1
    assert s["total"] == 5  # c1 c2 c5 c6 c8
    assert s["by_state"] == {**STATES_ZERO, "closed": 4, "reported": 1}
    assert s["by_risk"] == {"red": 2, "yellow": 1, "blue": 2}
    assert (s["accepted"], s["closed"], s["close_out_rate"]) == (4, 4, 1.0)
    assert (s["stages_ended"], s["on_time_rate"]) == (7, 0.8571)
    assert (s["closed_in_period"], s["grid_resolution_rate"]) == (4, 0.75)
    assert (s["median_hours_to_close"], s["p90_hours_to_close"]) == (15.0, 27.0)
    assert s["overdue"] == 0
    assert s["devices_with_unsent"] == 1
    assert [(r["code"], r["total"], r["accepted"], r["closed"], r["close_out_rate"]) for r in s["by_region"]] == [
        (MICRO_A1_1, 3, 3, 3, 1.0), (MICRO_A1_2, 2, 1, 1, 1.0),
        (GRID_A1 + "03", 0, 0, 0, None), (GRID_A1 + "04", 0, 0, 0, None)]
    # The grid's own worker sees the same figures for their grid.
    assert get_stats(client, auth, "wanggeyuan", query=PERIOD)["total"] == 5


def test_other_grid_and_micro_grid(client, auth, town):
    s = get_stats(client, auth, query=f"region={GRID_A2}&{PERIOD}")
    assert (s["total"], s["overdue"], s["close_out_rate"], s["devices_with_unsent"]) == (1, 1, 0.0, 0)
    assert (s["median_hours_to_close"], s["p90_hours_to_close"], s["grid_resolution_rate"]) == (None, None, None)
    s = get_stats(client, auth, query=f"region={MICRO_A1_1}&{PERIOD}")
    assert s["by_region"] == [] and s["total"] == 3


def test_a_period_that_leaves_cases_out(client, auth, town):
    s = get_stats(client, auth, query=NARROW)
    assert s["total"] == 3  # c3 c4 c5
    assert s["by_state"] == {**STATES_ZERO, "accepted": 1, "rejected": 1, "closed": 1}
    assert (s["accepted"], s["closed"], s["close_out_rate"]) == (2, 1, 0.5)
    # ended: c3 accept, c4 accept (late), c5 close, c1 close, c7 close
    assert (s["stages_ended"], s["on_time_rate"]) == (5, 0.8)
    # closed: c1 (10 h), c5 (2 h), c7 (20 h), all at grid level
    assert (s["closed_in_period"], s["grid_resolution_rate"]) == (3, 1.0)
    assert (s["median_hours_to_close"], s["p90_hours_to_close"]) == (10.0, 18.0)


def test_an_empty_period_has_null_rates(client, auth, town):
    s = get_stats(client, auth, query="from=2025-01-01&to=2025-02-01")
    assert s["total"] == 0 and s["by_state"] == STATES_ZERO
    for key in ("close_out_rate", "on_time_rate", "grid_resolution_rate", "median_hours_to_close",
                "p90_hours_to_close"):
        assert s[key] is None, key
    assert s["overdue"] == 1  # now, whatever the period


def test_the_city_sees_every_township(client, auth, town):
    s = get_stats(client, auth, "admin", query=PERIOD)
    assert s["total"] == 8  # township B's c9 as well
    rows = {r["code"]: r for r in s["by_region"]}
    assert rows[TOWN_A]["total"] == 7 and rows[TOWN_B]["total"] == 1 and rows[TOWN_B]["close_out_rate"] == 1.0
    assert s["devices_with_unsent"] == 2


def test_default_period_is_the_last_30_days(client, auth, town):
    s = get_stats(client, auth, query="")
    start = datetime.fromisoformat(s["from"])
    end = datetime.fromisoformat(s["to"])
    assert end - start == timedelta(days=30)
    assert abs(end - datetime.now(timezone.utc)) < timedelta(minutes=5)


@pytest.mark.parametrize("username,query,status", [
    ("reviewer", f"region={TOWN_B}", 404),  # outside the scope
    ("reviewer", "region=nope", 404),
    ("wanggeyuan", f"region={GRID_A2}", 404),  # a grid worker: their grid only
    ("reviewer_b", f"region={TOWN_A}", 404),
    ("zhiyuanzhe", "", 403),  # volunteers have no figures
    ("reviewer", "from=2026-10-05&to=2026-10-01", 422),
    ("reviewer", "from=yesterday", 422),
])
def test_refusals(client, auth, username, query, status):
    body = get_stats(client, auth, username, query=query, status=status)
    assert body["status"] == status and body["code"]


def test_dates_and_offsets(client, auth, town):
    # A date is its midnight in China Standard Time; an unencoded "+08:00" arrives as " 08:00".
    a = get_stats(client, auth, query="from=2026-10-04&to=2026-10-09")
    assert a["from"] == "2026-10-03T16:00:00+00:00"
    b = get_stats(client, auth, query="from=2026-10-04T00:00:00+08:00&to=2026-10-09T00:00:00%2B08:00")
    assert b["from"] == a["from"] and b["to"] == a["to"] and b["total"] == a["total"]


def test_percentiles_of_a_single_case(client, auth, town):
    s = get_stats(client, auth, query="from=2026-10-06T00:00:00Z&to=2026-10-07T00:00:00Z")
    assert s["closed_in_period"] == 1  # c5, 2 h
    assert (s["median_hours_to_close"], s["p90_hours_to_close"]) == (2.0, 2.0)
