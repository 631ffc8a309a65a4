"""POST /api/v1/cases/<id>/transitions and the bulk POST /api/v1/cases/transitions: the reviewers' online
transitions, through the same services (and the same merging) as a phone's ``case.transition`` op."""

from __future__ import annotations

from datetime import UTC

import pytest
from factories import MICRO_B1_1
from helpers import Phone, new_id, report_op, transition_op
from sqlalchemy import func, select

from app.cases.models import Case, CaseEvent, Conflict
from app.cases.workflow import TABLE
from app.extensions import db


@pytest.fixture
def worker(client, auth):
    return Phone(client, auth, "wanggeyuan")


@pytest.fixture
def reviewer(client, auth):
    return auth.headers("reviewer")


def _post(client, headers, case_id, **body):
    return client.post(f"/api/v1/cases/{case_id}/transitions", json=body, headers=headers)


def _report(phone, **kwargs) -> str:
    return phone.one(report_op(**kwargs))["case_id"]


def test_accept_is_applied_with_the_case_page_and_its_clock(client, worker, reviewer):
    cid = _report(worker, risk="red")
    r = _post(client, reviewer, cid, action="accept", base_version=1)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "applied" and body["conflicts"] == []
    assert body["case"]["id"] == cid and body["case"]["state"] == "accepted" and body["case"]["version"] == 2
    assert body["case"]["timeline"][-1]["action"] == "transition"
    assert body["case"]["timeline"][-1]["actor"] == "reviewer"
    assert body["stage"] == "close" and body["due_at"] and body["light"] == "green"


def test_stale_base_version_is_merged_not_overwritten(client, worker, reviewer, auth):
    cid = _report(worker)
    assert _post(client, reviewer, cid, action="accept", base_version=1).status_code == 200
    # another reviewer, still looking at version 1, accepts too: already done → a no-op, flagged
    other = auth.headers("admin")
    r = _post(client, other, cid, action="accept", base_version=1)
    assert r.status_code == 200
    assert r.get_json()["status"] == "applied" and r.get_json()["flags"] == ["stale_transition"]
    assert r.get_json()["case"]["version"] == 2
    # impossible now but possible at the base → a conflict on the state, the server's state kept
    cid2 = _report(worker)
    assert _post(client, reviewer, cid2, action="reject", base_version=1, reason="不属于受理范围").status_code == 200
    r = _post(client, other, cid2, action="accept", base_version=1)
    body = r.get_json()
    assert r.status_code == 200 and body["status"] == "conflict", body
    assert body["conflicts"][0]["field"] == "state"
    assert body["conflicts"][0]["server"] == "rejected" and body["conflicts"][0]["client"] == "accepted"
    assert body["case"]["state"] == "rejected"
    assert any(c["id"] == body["conflicts"][0]["conflict_id"] for c in body["case"]["conflicts"])


def test_missing_needs_are_field_errors(client, worker, reviewer):
    cid = _report(worker)
    r = _post(client, reviewer, cid, action="return", base_version=1)
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    assert r.get_json()["code"] == "validation_failed" and "reason" in r.get_json()["errors"]
    assert _post(client, reviewer, cid, action="accept", base_version=1).status_code == 200
    r = _post(client, reviewer, cid, action="assign", base_version=2)
    assert r.status_code == 422 and "assignee" in r.get_json()["errors"]
    r = _post(client, reviewer, cid, action="assign", base_version=2, assignee="worker_b")
    assert r.status_code == 422 and "assignee" in r.get_json()["errors"]  # not in the reviewer's region
    r = _post(client, reviewer, cid, action="assign", base_version=2, assignee="worker_a2")
    assert r.status_code == 200 and r.get_json()["case"]["assignee"] == "worker_a2"


def test_bad_bodies_are_refused(client, worker, reviewer):
    cid = _report(worker)
    for body in ({"action": "fly", "base_version": 1}, {"action": "accept"}, {"action": "accept", "base_version": "1"},
                 {"action": "accept", "base_version": 1, "state": "closed"}):
        r = client.post(f"/api/v1/cases/{cid}/transitions", json=body, headers=reviewer)
        assert r.status_code == 422, (body, r.get_json())
    r = _post(client, reviewer, cid, action="accept", base_version=9)
    assert r.status_code == 422 and r.get_json()["code"] == "base_version_ahead"


def test_forbidden_role_is_403(client, worker, auth):
    cid = _report(worker)
    r = _post(client, worker.headers, cid, action="accept", base_version=1)
    assert r.status_code == 403 and r.get_json()["code"] == "forbidden"


def test_wrong_state_is_409(client, worker, reviewer):
    cid = _report(worker)
    r = _post(client, reviewer, cid, action="verify_close", base_version=1)
    assert r.status_code == 409 and r.get_json()["code"] == "transition_not_allowed"


@pytest.mark.parametrize("username", ["reviewer_b", "worker_b", "volunteer_b"])
def test_outsider_gets_404(client, worker, auth, username):
    cid = _report(worker)
    r = _post(client, auth.headers(username), cid, action="accept", base_version=1)
    assert r.status_code == 404 and r.get_json()["code"] == "not_found"
    assert _post(client, auth.headers(username), new_id(), action="accept", base_version=1).status_code == 404


def test_merge_within_the_township_only(app, client, worker, reviewer, auth):
    first, second = _report(worker), _report(worker)
    worker_b = Phone(client, auth, "worker_b")
    elsewhere = _report(worker_b, micro_grid=MICRO_B1_1, location=None)
    admin = auth.headers("admin")
    r = _post(client, admin, second, action="merge", base_version=1, target=elsewhere)
    assert r.status_code == 422 and "target" in r.get_json()["errors"]
    r = _post(client, reviewer, second, action="merge", base_version=1, target=elsewhere)
    assert r.status_code == 422 and "target" in r.get_json()["errors"]  # not even visible to this reviewer
    r = _post(client, reviewer, second, action="merge", base_version=1, target=first)
    assert r.status_code == 200 and r.get_json()["case"]["state"] == "merged"
    assert r.get_json()["case"]["merged_into"] == first
    # a later transition on the merged case is redirected to the surviving one
    r = _post(client, reviewer, second, action="accept", base_version=2)
    assert r.status_code == 200 and "redirected" in r.get_json()["flags"]
    assert r.get_json()["case"]["id"] == first and r.get_json()["case"]["state"] == "accepted"


def test_online_and_offline_transitions_meet_in_the_same_merge(client, worker, reviewer):
    cid = _report(worker)
    assert _post(client, reviewer, cid, action="accept", base_version=1).status_code == 200
    assert _post(client, reviewer, cid, action="assign", base_version=2, assignee="wanggeyuan").status_code == 200
    # the phone, offline since version 3, starts and resolves; the reviewer meanwhile re-assigns (version 4)
    assert _post(client, reviewer, cid, action="assign", base_version=3, unit="消防中队").status_code == 200
    result = worker.one(transition_op(cid, 3, "start"))
    assert result["status"] == "applied" and result["case_version"] == 5


# ---------------------------------------------------------------------------------------------- the table


def _case_in_state(app, client, volunteer: Phone, state: str, suspended: bool = False) -> tuple[str, int]:
    """A volunteer's report moved straight into ``state`` (the table is about what happens next)."""
    from datetime import datetime

    cid = volunteer.one(report_op(category="fire_hazard"))["case_id"]
    with app.app_context():
        case = db.session.get(Case, cid)
        case.state = state
        if suspended:
            case.suspended_at = datetime.now(UTC)
        db.session.commit()
        return cid, case.version


# who may and who may not, for each kind of row: the case is a volunteer's report in township A.
_MAY_NOT = {"resubmit": "wanggeyuan", "start": "zhiyuanzhe", "resolve": "zhiyuanzhe", "escalate": "zhiyuanzhe"}


def _params(action: str, target: str | None) -> dict:
    return {"reason": "核实后处理", "assignee": "wanggeyuan", "target": target,
            "note": {"text": "已整改完毕"} if action == "resolve" else None}


@pytest.mark.parametrize("key", sorted(TABLE), ids=lambda k: f"{k[0]}-{k[1]}")
def test_every_transition_allowed_for_one_role_refused_for_another(app, client, auth, key):
    state, action = key
    row = TABLE[key]
    volunteer = Phone(client, auth, "zhiyuanzhe")
    suspended = action == "resume"
    target = volunteer.one(report_op())["case_id"] if action == "merge" else None
    cid, version = _case_in_state(app, client, volunteer, state, suspended)
    body = {k: v for k, v in _params(action, target).items() if v is not None}

    refused_by = _MAY_NOT.get(action, "wanggeyuan")
    r = _post(client, auth.headers(refused_by), cid, action=action, base_version=version, **body)
    assert r.status_code == 403, (refused_by, r.get_json())

    assert "reviewer" in row.roles
    r = _post(client, auth.headers("reviewer"), cid, action=action, base_version=version, **body)
    assert r.status_code == 200, r.get_json()
    page = r.get_json()["case"]
    assert r.get_json()["status"] == "applied"
    assert page["state"] == (row.next or state) and page["version"] == version + 1
    with app.app_context():
        event = db.session.scalar(select(CaseEvent).where(CaseEvent.case_id == cid, CaseEvent.version == version + 1))
        assert event.action == "transition" and event.data["action"] == action


@pytest.mark.parametrize("action", sorted({a for _, a in TABLE}))
def test_every_action_refused_in_every_state_the_table_lacks(app, client, auth, action):
    from app.cases.models import STATES

    volunteer = Phone(client, auth, "zhiyuanzhe")
    reviewer = auth.headers("reviewer")
    for state in STATES:
        if (state, action) in TABLE:
            continue
        cid, version = _case_in_state(app, client, volunteer, state)
        r = _post(client, reviewer, cid, action=action, base_version=version, reason="x", assignee="wanggeyuan",
                  note={"text": "x"})
        assert r.status_code == 409, (state, action, r.get_json())
        assert r.get_json()["code"] == "transition_not_allowed"


def test_assignee_may_start_and_resolve(client, worker, reviewer, auth):
    cid = _report(worker)
    _post(client, reviewer, cid, action="accept", base_version=1)
    _post(client, reviewer, cid, action="assign", base_version=2, assignee="worker_a2")
    a2 = auth.headers("worker_a2")
    assert _post(client, a2, cid, action="start", base_version=3).status_code == 200
    r = _post(client, a2, cid, action="resolve", base_version=4)
    assert r.status_code == 422 and "note" in r.get_json()["errors"]
    r = _post(client, a2, cid, action="resolve", base_version=4, note={"text": "已清理"})
    assert r.status_code == 200 and r.get_json()["case"]["state"] == "resolved"
    assert r.get_json()["case"]["notes"][-1]["text"] == "已清理"


# ---------------------------------------------------------------------------------------------- bulk


def _bulk(client, headers, action, cases, **extra):
    return client.post("/api/v1/cases/transitions", json={"action": action, "cases": cases, **extra},
                       headers=headers)


def test_bulk_answers_each_case_and_one_failure_stops_nothing(app, client, worker, reviewer):
    ok1, ok2, stale, closed_ = (_report(worker) for _ in range(4))
    _post(client, reviewer, stale, action="accept", base_version=1)
    with app.app_context():
        db.session.get(Case, closed_).state = "closed"
        db.session.commit()
    r = _bulk(client, reviewer, "accept", [{"id": ok1, "base_version": 1}, {"id": closed_, "base_version": 1},
                                           {"id": stale, "base_version": 1}, {"id": ok2, "base_version": 1}])
    assert r.status_code == 200, r.get_json()
    results = r.get_json()
    assert [x["id"] for x in results] == [ok1, closed_, stale, ok2]
    assert [x["status"] for x in results] == ["applied", "rejected", "applied", "applied"]
    assert results[1]["code"] == "transition_not_allowed"
    assert results[2]["flags"] == ["stale_transition"] and results[2]["case_version"] == 2
    assert results[0]["case_version"] == 2 and results[3]["case_version"] == 2
    with app.app_context():
        for cid in (ok1, ok2):
            case = db.session.get(Case, cid)
            assert case.state == "accepted" and case.number
            events = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == cid)
                                        .order_by(CaseEvent.version)).all()
            assert [e.action for e in events] == ["create", "transition"]
            assert events[-1].actor_id is not None
        assert db.session.get(Case, closed_).version == 1  # untouched


def test_bulk_reject_needs_a_reason_per_case(client, worker, reviewer):
    a, b = _report(worker), _report(worker)
    r = _bulk(client, reviewer, "reject", [{"id": a, "base_version": 1}, {"id": b, "base_version": 1}])
    assert r.status_code == 200
    assert [x["status"] for x in r.get_json()] == ["rejected", "rejected"]
    assert all("reason" in x["errors"] for x in r.get_json())
    r = _bulk(client, reviewer, "reject", [{"id": a, "base_version": 1}, {"id": b, "base_version": 1}],
              reason="重复上报")
    assert [x["status"] for x in r.get_json()] == ["applied", "applied"]


def test_bulk_refusals(client, worker, reviewer, auth):
    cid = _report(worker)
    one = [{"id": cid, "base_version": 1}]
    assert _bulk(client, worker.headers, "accept", one).status_code == 403
    assert _bulk(client, reviewer, "assign", one).status_code == 422
    assert _bulk(client, reviewer, "accept", []).status_code == 422
    assert _bulk(client, reviewer, "accept", one * 2).status_code == 422
    many = [{"id": new_id(), "base_version": 1} for _ in range(201)]
    assert _bulk(client, reviewer, "accept", many).status_code == 422
    # a case the caller cannot see: the whole call is a 404, saying nothing of which ids exist
    r = _bulk(client, auth.headers("reviewer_b"), "accept", one)
    assert r.status_code == 404
    r = _bulk(client, reviewer, "accept", one + [{"id": new_id(), "base_version": 1}])
    assert r.status_code == 404
    r = _bulk(client, reviewer, "accept", one)
    assert r.get_json()[0]["status"] == "applied"


def test_bulk_conflict_is_recorded(app, client, worker, reviewer):
    cid = _report(worker)
    _post(client, reviewer, cid, action="accept", base_version=1)
    r = _bulk(client, reviewer, "return", [{"id": cid, "base_version": 1}], reason="请补充照片")
    # return is possible from accepted too: applied on the current state
    assert r.get_json()[0]["status"] == "applied"
    cid2 = _report(worker)
    _post(client, reviewer, cid2, action="reject", base_version=1, reason="不予受理")
    r = _bulk(client, reviewer, "accept", [{"id": cid2, "base_version": 1}])
    assert r.get_json()[0]["status"] == "conflict" and r.get_json()[0]["conflicts"][0]["field"] == "state"
    with app.app_context():
        assert db.session.scalar(select(func.count(Conflict.id)).where(Conflict.case_id == cid2)) == 1
