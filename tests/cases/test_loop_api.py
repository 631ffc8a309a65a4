"""The loop closes for every person: the case page's stage, deadline and light; the "anything new?" ETag
(304 while nothing in my scope changed); who may take a case; a returned case answered and what changed
since; how a volunteer's report ended; the points ledger."""

from __future__ import annotations

import pytest
from helpers import Phone, fake_hash, note_op, report_op, transition_op, update_op


@pytest.fixture
def phones(client, auth):
    return {name: Phone(client, auth, name) for name in
            ("wanggeyuan", "worker_a2", "zhiyuanzhe", "reviewer", "reviewer_b", "worker_b", "village_reviewer")}


def _report(phone, **kwargs) -> str:
    result = phone.one(report_op(**kwargs))
    assert result["status"] == "applied", result
    return result["case_id"]


def _act(phone, case_id, version, action, **params) -> dict:
    result = phone.one(transition_op(case_id, version, action, **params))
    assert result["status"] == "applied", result
    return result


def _page(client, phone, case_id):
    r = client.get(f"/api/v1/cases/{case_id}", headers=phone.headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _watch(client, phone, etag=None):
    headers = {**phone.headers, **({"If-None-Match": etag} if etag else {})}
    return client.get("/api/v1/cases/watch", headers=headers)


# ------------------------------------------------------------------------------------------------ deadlines


def test_case_page_carries_the_running_stage_its_deadline_light_and_clock(client, phones):
    w, rv = phones["wanggeyuan"], phones["reviewer"]
    red = _report(w, risk="red")
    page = _page(client, w, red)
    assert page["stage"] == "accept" and page["clock"] == "natural" and page["light"] == "green"
    assert page["due_at"] and 110 <= page["left_minutes"] <= 120
    assert page["running_stage"]["due_at"] == page["due_at"]
    _act(rv, red, 1, "accept")
    page = _page(client, w, red)
    assert page["stage"] == "close" and page["left_minutes"] > 23 * 60
    yellow = _report(w, risk="yellow")
    assert _page(client, w, yellow)["clock"] == "working"
    # the pulled copy carries what the phone needs to draw the light offline
    pulled = {ch["case"]["id"]: ch["case"] for ch in client.get("/api/v1/sync/changes", headers=w.headers)
              .get_json()["changes"] if "case" in ch}
    assert pulled[red]["stage"] == "close" and pulled[red]["due_at"] and pulled[red]["warn_at"]
    _act(rv, yellow, 1, "reject", reason="不属于受理范围")
    page = _page(client, w, yellow)
    assert page["stage"] is None and page["light"] is None and page["due_at"] is None


# ------------------------------------------------------------------------------------------------ watch


def test_watch_is_304_until_something_in_my_scope_changes(client, phones):
    w, rv, outsider = phones["wanggeyuan"], phones["reviewer"], phones["worker_b"]
    first = _watch(client, w)
    assert first.status_code == 200 and first.headers["ETag"] == first.get_json()["etag"]
    assert first.get_json()["poll_s"] <= 60
    tag = first.headers["ETag"]
    assert _watch(client, w, tag).status_code == 304
    assert _watch(client, w, tag).get_data() == b""
    outsider_tag = _watch(client, outsider).headers["ETag"]
    # a report in township A, reviewed and assigned to the grid worker
    case_id = _report(phones["zhiyuanzhe"])
    changed = _watch(client, w, tag)
    assert changed.status_code == 200 and changed.headers["ETag"] != tag  # a new case in my grid
    tag = changed.headers["ETag"]
    _act(rv, case_id, 1, "accept")
    before = changed.get_json()["assigned_open"]
    _act(rv, case_id, 2, "assign", assignee="wanggeyuan")
    after = _watch(client, w, tag)
    assert after.status_code == 200 and after.get_json()["assigned_open"] == before + 1
    assert _watch(client, w, after.headers["ETag"]).status_code == 304
    # none of that was the outsider's business: their ETag stands
    assert _watch(client, outsider, outsider_tag).status_code == 304
    # the outsider's own change does not alter mine
    _report(outsider, micro_grid="3303810020010101", lat=27.7437, lon=120.6443)
    assert _watch(client, w, after.headers["ETag"]).status_code == 304


def test_watch_counts_what_the_reviewer_waits_for(client, phones):
    rv = phones["reviewer"]
    tag = _watch(client, rv)
    waiting = tag.get_json()["awaiting_review"]
    _report(phones["wanggeyuan"])
    r = _watch(client, rv, tag.headers["ETag"])
    assert r.status_code == 200 and r.get_json()["awaiting_review"] == waiting + 1
    # another township's reviewer: 304, nothing for them
    other = _watch(client, phones["reviewer_b"])
    _report(phones["wanggeyuan"])
    assert _watch(client, phones["reviewer_b"], other.headers["ETag"]).status_code == 304


def test_watch_etag_is_per_person(client, phones):
    """Two people of one grid see the same cases but never share an ETag (a shared proxy cache)."""
    a = _watch(client, phones["wanggeyuan"]).headers["ETag"]
    assert _watch(client, phones["zhiyuanzhe"], a).status_code == 200


# ------------------------------------------------------------------------------------------------ assignees


def test_assignees_lists_the_grids_workers_first_with_names_and_workload(client, phones, app):
    w, rv = phones["wanggeyuan"], phones["reviewer"]
    from app.extensions import db
    from app.users.models import User

    with app.app_context():
        db.session.execute(User.__table__.update().where(User.username == "worker_a2")
                           .values(display_name="李四"))
        db.session.commit()
    busy = _report(w)
    _act(rv, busy, 1, "accept")
    _act(rv, busy, 2, "assign", assignee="worker_a2")
    case_id = _report(w, risk="red")
    _act(rv, case_id, 1, "accept")
    r = client.get(f"/api/v1/cases/{case_id}/assignees", headers=rv.headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    people = body["people"]
    names = [p["username"] for p in people]
    assert names[0] == "wanggeyuan" and people[0]["same_grid"] is True  # the case's grid first
    other = next(p for p in people if p["username"] == "worker_a2")
    assert other["display_name"] == "李四" and other["same_grid"] is False and other["open_cases"] >= 1
    assert "worker_b" not in names  # another township's
    assert all(p["role"] == "grid_worker" for p in people)
    assert body["deadline"]["stage"] == "close" and body["deadline"]["due_at"]
    # out of scope is missing; grid workers may not ask
    assert client.get(f"/api/v1/cases/{case_id}/assignees", headers=phones["reviewer_b"].headers).status_code == 404
    assert client.get(f"/api/v1/cases/{case_id}/assignees", headers=w.headers).status_code == 403
    assert client.get("/api/v1/cases/00000000-0000-4000-8000-000000000000/assignees",
                      headers=rv.headers).status_code == 404


# ------------------------------------------------------------------------------------------------ return → resubmit


def test_a_returned_report_is_answered_and_the_reviewer_sees_what_changed(client, phones):
    v, rv = phones["zhiyuanzhe"], phones["reviewer"]
    case_id = _report(v, description="路口有隐患", risk="blue")
    _act(rv, case_id, 1, "return", reason="请补充照片和具体位置")
    page = _page(client, v, case_id)
    assert page["state"] == "returned" and page["returned"]["reason"] == "请补充照片和具体位置"
    assert page["returned"]["actor"] == "reviewer" and page["display_names"]["reviewer"]
    pulled = [ch["case"] for ch in client.get("/api/v1/sync/changes", headers=v.headers).get_json()["changes"]
              if ch.get("case", {}).get("id") == case_id]
    assert pulled[0]["return_reason"] == "请补充照片和具体位置"
    version = page["version"]
    # the volunteer answers, as the phone sends it: the fields, a note with a photo, then resubmit
    photo = fake_hash("more evidence")
    results = v.sync(update_op(case_id, version, {"description": "路口东侧井盖缺失", "risk_level": "yellow"}),
                     note_op(case_id, text="补充：井盖缺失", photos=[photo]),
                     transition_op(case_id, version + 2, "resubmit"), client_time="now")["results"]
    assert [r["status"] for r in results] == ["applied"] * 3, results
    page = _page(client, rv, case_id)
    assert page["state"] == "reported" and page["stage"] == "accept"
    diff = page["changed_since_return"]
    assert diff["reason"] == "请补充照片和具体位置" and diff["resubmitted_at"]
    assert diff["fields"]["description"] == ["路口有隐患", "路口东侧井盖缺失"]
    assert diff["fields"]["risk_level"] == ["blue", "yellow"]
    assert [n["text"] for n in diff["notes"]] == ["补充：井盖缺失"]
    assert page["return_reason"] is None  # no longer asked for anything


def test_a_case_never_returned_has_no_diff(client, phones):
    case_id = _report(phones["wanggeyuan"])
    page = _page(client, phones["reviewer"], case_id)
    assert page["returned"] is None and page["changed_since_return"] is None


# ------------------------------------------------------------------------------------------------ how it ended


def test_the_volunteer_sees_how_the_report_ended(client, phones):
    v, w, rv = phones["zhiyuanzhe"], phones["wanggeyuan"], phones["reviewer"]
    case_id = _report(v, risk="red")
    assert _page(client, v, case_id)["resolution"] is None
    _act(rv, case_id, 1, "accept")
    _act(rv, case_id, 2, "assign", assignee="wanggeyuan")
    _act(w, case_id, 3, "start")
    _act(w, case_id, 4, "resolve", note={"id": "2b1d3c6e-5a4f-4e2b-9c1d-7e6f5a4b3c2d", "text": "已清理堵塞物",
                                         "photos": [], "captured_at": "2026-11-22T10:00:00+08:00"})
    _act(rv, case_id, 5, "verify_close")
    page = _page(client, v, case_id)
    assert page["state"] == "closed"
    assert page["resolution"]["action"] == "verify_close" and page["resolution"]["note"] == "已清理堵塞物"
    assert page["conflicts"] == []  # the reviewers' business
    assert any(n["text"] == "已清理堵塞物" and n["author"] == "wanggeyuan" for n in page["notes"])


def test_the_points_ledger_is_mine_whole_and_paged(client, phones):
    v, rv = phones["zhiyuanzhe"], phones["reviewer"]
    ids = [_report(v, risk=risk) for risk in ("red", "yellow", "blue")]
    for cid in ids:
        _act(rv, cid, 1, "accept")
    _act(rv, ids[2], 2, "reject", reason="重复上报")
    r = client.get("/api/v1/points/ledger?limit=2", headers=v.headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["total"] == 10 + 5
    assert [(e["points"], e["reason"]) for e in body["entries"]] == [(-2, "rejected"), (2, "accepted")]
    assert body["entries"][0]["case_number"] and body["entries"][0]["case_state"] == "rejected"
    rest = client.get(f"/api/v1/points/ledger?limit=2&before={body['next']}", headers=v.headers).get_json()
    assert [e["points"] for e in rest["entries"]] == [5, 10] and rest["next"] is None
    # only volunteers have a ledger; a bad cursor is a clear 422
    assert client.get("/api/v1/points/ledger", headers=rv.headers).status_code == 403
    bad = client.get("/api/v1/points/ledger?before=abc", headers=v.headers)
    assert bad.status_code == 422 and bad.get_json()["code"]
