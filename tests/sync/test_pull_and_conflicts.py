"""Pull (changes since a cursor, tombstones, paging) and resolving conflicts."""

from __future__ import annotations

from factories import MICRO_A2_1
from helpers import Phone, new_id, note_op, report_op, transition_op, update_op
from sqlalchemy import select

from app.cases.models import Case, CaseEvent
from app.extensions import db


def pull(client, headers, cursor=None, limit=200):
    url = "/api/v1/sync/changes" + (f"?cursor={cursor}&limit={limit}" if cursor is not None else f"?limit={limit}")
    r = client.get(url, headers=headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_pull_pages_in_change_order_and_resumes(client, auth):
    worker = Phone(client, auth, "wanggeyuan")
    ids = [worker.one(report_op())["case_id"] for _ in range(5)]
    page = pull(client, worker.headers, limit=2)
    assert [c["case"]["id"] for c in page["changes"]] == ids[:2]
    assert page["has_more"] is True
    seen = [c["case"]["id"] for c in page["changes"]]
    while page["has_more"]:
        page = pull(client, worker.headers, page["cursor"], limit=2)
        seen += [c["case"]["id"] for c in page["changes"]]
    assert seen == ids
    # nothing new: same cursor back, empty
    again = pull(client, worker.headers, page["cursor"])
    assert again["changes"] == [] and again["cursor"] == page["cursor"]
    # a change to the first case moves it to the end of the order
    worker.one(note_op(ids[0]))
    after = pull(client, worker.headers, page["cursor"])
    assert [c["case"]["id"] for c in after["changes"]] == [ids[0]]
    assert after["changes"][0]["case"]["version"] == 2


def test_pull_is_deterministic(client, auth):
    worker = Phone(client, auth, "wanggeyuan")
    for _ in range(3):
        worker.one(report_op())
    assert pull(client, worker.headers) == pull(client, worker.headers)


def test_tombstones_when_a_case_leaves_the_working_set_or_the_scope(client, auth):
    worker = Phone(client, auth, "wanggeyuan")
    reviewer = Phone(client, auth, "reviewer")
    other_worker = Phone(client, auth, "worker_a2")  # grid A2
    closed = reviewer.one(report_op(handled_on_spot=True))["case_id"]  # not the worker's own report
    moved = worker.one(report_op())["case_id"]
    start = pull(client, other_worker.headers)["cursor"]
    cursor = pull(client, worker.headers)["cursor"]
    reviewer.one(transition_op(closed, 1, "verify_close"))
    # the reviewer moves the second case into grid A2: it leaves grid A1
    reviewer.one(update_op(moved, 1, {"micro_grid_id": MICRO_A2_1}))
    page = pull(client, worker.headers, cursor)
    by_id = {(c.get("case") or c.get("tombstone"))["id"]: c for c in page["changes"]}
    assert by_id[closed]["tombstone"]["reason"] == "closed"
    # the reporter keeps their own report in the working set even when it moved
    assert "case" in by_id[moved]
    # the other grid's worker now receives it
    page = pull(client, other_worker.headers, start)
    assert [c["case"]["id"] for c in page["changes"] if "case" in c] == [moved]


def test_tombstone_for_a_case_that_left_the_scope(client, auth):
    volunteer = Phone(client, auth, "zhiyuanzhe")  # reports in grid A1, not the worker's own report
    worker = Phone(client, auth, "wanggeyuan")
    reviewer = Phone(client, auth, "reviewer")
    cid = volunteer.one(report_op())["case_id"]
    cursor = pull(client, worker.headers)["cursor"]
    assert cursor != "0"
    reviewer.one(update_op(cid, 1, {"micro_grid_id": MICRO_A2_1}))
    page = pull(client, worker.headers, cursor)
    assert page["changes"] == [{"seq": page["changes"][0]["seq"], "tombstone": {"id": cid, "reason": "out_of_scope"}}]


def test_pull_scope_for_outsiders_and_volunteers(client, auth):
    Phone(client, auth, "wanggeyuan").one(report_op())
    assert pull(client, auth.headers("worker_b"))["changes"] == []
    assert pull(client, auth.headers("reviewer_b"))["changes"] == []
    assert pull(client, auth.headers("zhiyuanzhe"))["changes"] == []  # not their report
    assert len(pull(client, auth.headers("reviewer"))["changes"]) == 1


def test_bad_cursor(client, auth):
    r = client.get("/api/v1/sync/changes?cursor=abc", headers=auth.headers("wanggeyuan"))
    assert r.status_code == 422 and r.get_json()["code"] == "invalid_cursor"


def _conflict(client, auth):
    worker = Phone(client, auth, "wanggeyuan")
    reviewer = Phone(client, auth, "reviewer")
    cid = worker.one(report_op())["case_id"]
    reviewer.one(update_op(cid, 1, {"risk_level": "red"}))
    r = worker.one(update_op(cid, 1, {"risk_level": "blue"}))
    return cid, r["conflicts"][0]["conflict_id"]


def test_conflicts_listed_for_the_cases_reviewers_only(client, auth):
    cid, conflict_id = _conflict(client, auth)
    mine = client.get("/api/v1/conflicts", headers=auth.headers("reviewer")).get_json()
    assert [c["id"] for c in mine] == [conflict_id]
    assert mine[0]["username"] == "wanggeyuan" and mine[0]["field"] == "risk_level"
    assert mine[0]["base"] == "yellow" and mine[0]["server"] == "red" and mine[0]["client"] == "blue"
    assert client.get("/api/v1/conflicts", headers=auth.headers("reviewer_b")).get_json() == []
    assert client.get("/api/v1/conflicts", headers=auth.headers("wanggeyuan")).status_code == 403
    r = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", json={"choose": "client"},
                    headers=auth.headers("reviewer_b"))
    assert r.status_code == 404


def test_resolve_take_client_is_an_event(app, client, auth):
    cid, conflict_id = _conflict(client, auth)
    r = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", json={"choose": "client"},
                    headers=auth.headers("reviewer"))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "resolved" and r.get_json()["resolved_value"] == "blue"
    with app.app_context():
        case = db.session.get(Case, cid)
        assert case.risk_level == "blue"
        last = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == cid)
                                  .order_by(CaseEvent.version.desc())).first()
        assert last.action == "conflict_resolved" and last.changes == {"risk_level": ["red", "blue"]}
    again = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", json={"choose": "server"},
                        headers=auth.headers("reviewer"))
    assert again.status_code == 409 and again.get_json()["code"] == "conflict_resolved"


def test_resolve_keep_server_and_new_value(app, client, auth):
    cid, conflict_id = _conflict(client, auth)
    r = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", json={"choose": "server"},
                    headers=auth.headers("reviewer"))
    assert r.status_code == 200 and r.get_json()["resolved_value"] == "red"
    cid, conflict_id = _conflict(client, auth)
    bad = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", json={"choose": "value", "value": "purple"},
                      headers=auth.headers("reviewer"))
    assert bad.status_code == 422 and "value" in bad.get_json()["errors"]
    r = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", json={"choose": "value", "value": "yellow"},
                    headers=auth.headers("reviewer"))
    assert r.status_code == 200
    with app.app_context():
        assert db.session.get(Case, cid).risk_level == "yellow"


def test_state_conflicts_are_settled_by_transition(client, auth):
    worker = Phone(client, auth, "wanggeyuan")
    reviewer = Phone(client, auth, "reviewer")
    cid = worker.one(report_op())["case_id"]
    reviewer.one(transition_op(cid, 1, "reject", reason="重复上报"))
    # the worker resubmits offline... impossible: returned never happened. Accept was possible? no.
    reviewer2 = Phone(client, auth, "village_reviewer")
    r = reviewer2.one(transition_op(cid, 1, "accept"))
    assert r["status"] == "conflict"
    conflict_id = r["conflicts"][0]["conflict_id"]
    r = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", json={"choose": "client"},
                    headers=auth.headers("reviewer"))
    assert r.status_code == 409 and r.get_json()["code"] == "state_conflict_needs_transition"
    r = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", json={"choose": "server"},
                    headers=auth.headers("reviewer"))
    assert r.status_code == 200


def test_categories_and_workflow_tables(client, auth):
    h = auth.headers("zhiyuanzhe")
    categories = client.get("/api/v1/categories", headers=h).get_json()
    codes = {c["code"]: c for c in categories}
    assert "fire_hazard" in codes and codes["fire_hazard"]["name_zh"] == "消防隐患"
    assert "volunteer" not in codes["dispute"]["roles"]
    table = client.get("/api/v1/workflow", headers=h).get_json()
    assert {"state": "reported", "action": "accept", "next": "accepted", "roles": ["reviewer", "admin"],
            "needs": []} in table
    assert any(row["action"] == "resolve" and "rectification_photo_or_note" in row["needs"] for row in table)
    assert new_id() != new_id()


def test_case_page_answers_who_changed_what_and_when(client, auth):
    worker = Phone(client, auth, "wanggeyuan", device_id="phone-timeline-01")
    reviewer = Phone(client, auth, "reviewer")
    report = report_op(photos=["a" * 64])
    cid = worker.one(report)["case_id"]
    reviewer.one(update_op(cid, 1, {"risk_level": "red"}))
    conflict = worker.one(update_op(cid, 1, {"risk_level": "blue"}))
    worker.one(note_op(cid, text="补拍一张", photos=["b" * 64]))
    page = client.get(f"/api/v1/cases/{cid}", headers=auth.headers("reviewer")).get_json()
    assert [e["action"] for e in page["timeline"]] == ["create", "update", "update", "note"]
    second = page["timeline"][1]
    assert second["actor"] == "reviewer" and second["changes"] == {"risk_level": ["yellow", "red"]}
    assert second["at"] and second["op_id"]
    first = page["timeline"][0]
    assert first["actor"] == "wanggeyuan" and first["device_id"] == "phone-timeline-01"
    assert first["op_id"] == report["op_id"]
    assert page["conflicts"][0]["id"] == conflict["conflicts"][0]["conflict_id"]
    assert page["missing_photos"] == ["a" * 64, "b" * 64]
    assert [p["sha256"] for p in page["photos_by_role"]["evidence"]] == ["a" * 64, "b" * 64]
    assert page["notes"][0]["text"] == "补拍一张" and page["notes"][0]["author"] == "wanggeyuan"
    # the reporter sees the page without the reviewers' conflict list; outsiders see nothing
    assert client.get(f"/api/v1/cases/{cid}", headers=worker.headers).get_json()["conflicts"] == []
    assert client.get(f"/api/v1/cases/{cid}", headers=auth.headers("reviewer_b")).status_code == 404
    assert client.get(f"/api/v1/cases/{new_id()}", headers=auth.headers("reviewer")).status_code == 404
