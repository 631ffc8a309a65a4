"""The sync protocol, op by op: every status, every flag, exactly-once, held ops, bad input."""

from __future__ import annotations

import json

import pytest
from factories import GRID_A1, MICRO_A1_1, MICRO_A1_2, MICRO_B1_1
from helpers import INSIDE_A1_1, Phone, fake_hash, new_id, note_op, report_op, transition_op, update_op
from sqlalchemy import func, select

from app.cases.models import Case, CaseEvent, CaseNote, CasePhoto, Conflict
from app.extensions import db
from app.sync.models import HeldOp, OpLog


@pytest.fixture
def worker(client, auth):
    return Phone(client, auth, "wanggeyuan")


@pytest.fixture
def reviewer(client, auth):
    return Phone(client, auth, "reviewer")


def count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


# ---------------------------------------------------------------------------------------------- applied


def test_report_creates_a_case_with_number_event_and_missing_photos(app, worker):
    photo = fake_hash("before")
    op = report_op(photos=[photo])
    body = worker.sync(op, client_time="now")
    assert body["server_time"] and abs(body["clock_skew_s"]) < 60
    result = body["results"][0]
    assert result["status"] == "applied"
    assert result["case_id"] == op["report"]["id"]
    assert result["case_version"] == 1
    assert result["missing_photos"] == [photo]
    assert result["flags"] == []
    with app.app_context():
        case = db.session.get(Case, op["report"]["id"])
        assert case.state == "reported" and case.level == "grid"
        assert case.number.startswith("RA-20") and case.number.endswith("000001")
        assert case.grid_code == GRID_A1 and case.micro_grid_code == MICRO_A1_1
        event = db.session.scalar(select(CaseEvent).where(CaseEvent.case_id == case.id))
        assert event.version == 1 and event.action == "create" and event.op_id == op["op_id"]
        assert event.device_id == worker.device_id and event.actor_id == case.reporter_id
        assert event.changes["risk_level"] == [None, "yellow"]
        assert count(OpLog, OpLog.op_id == op["op_id"]) == 1


def test_case_numbers_count_up(worker):
    results = worker.sync(report_op(), report_op(), report_op(), client_time="now")["results"]
    assert [r["status"] for r in results] == ["applied"] * 3


def test_handled_on_spot_is_created_resolved(app, worker):
    op = report_op(handled_on_spot=True, risk="blue")
    assert worker.one(op)["status"] == "applied"
    with app.app_context():
        assert db.session.get(Case, op["report"]["id"]).state == "resolved"


def test_volunteer_cannot_close_on_the_spot(client, auth):
    volunteer = Phone(client, auth, "zhiyuanzhe")
    r = volunteer.one(report_op(handled_on_spot=True))
    assert r["status"] == "rejected" and r["code"] == "forbidden"


# ---------------------------------------------------------------------------------------------- exactly once


def test_replayed_batch_changes_nothing(app, worker):
    ops = [report_op(), report_op()]
    first = worker.sync(*ops)["results"]
    ops.append(note_op(first[0]["case_id"]))
    second = worker.sync(*ops)["results"]
    assert [r["status"] for r in second] == ["duplicate", "duplicate", "applied"]
    assert second[0]["case_id"] == first[0]["case_id"]
    assert second[0]["original_status"] == "applied"
    third = worker.sync(*ops)["results"]
    assert [r["status"] for r in third] == ["duplicate"] * 3
    with app.app_context():
        assert count(Case) == 2
        assert count(CaseNote) == 1
        assert count(CaseEvent, CaseEvent.case_id == first[0]["case_id"]) == 2


def test_op_id_reused_with_another_payload(worker):
    op = report_op()
    assert worker.one(op)["status"] == "applied"
    changed = json.loads(json.dumps(op))
    changed["report"]["description"] = "换了内容"
    r = worker.one(changed)
    assert r["status"] == "rejected" and r["code"] == "op_id_reused"


def test_duplicate_op_ids_inside_one_batch(app, worker):
    op = report_op()
    other = json.loads(json.dumps(op))
    other["report"]["risk_level"] = "red"
    results = worker.sync(op, op, other)["results"]
    assert [r["status"] for r in results] == ["applied", "duplicate", "rejected"]
    assert results[2]["code"] == "op_id_reused"
    with app.app_context():
        assert count(Case) == 1


def test_replay_from_another_device_is_a_duplicate(client, auth, worker):
    op = report_op()
    assert worker.one(op)["status"] == "applied"
    second_phone = Phone(client, auth, "wanggeyuan")
    assert second_phone.one(op)["status"] == "duplicate"


def test_case_id_already_taken_by_another_op(worker):
    op = report_op()
    assert worker.one(op)["status"] == "applied"
    again = report_op(report_id=op["report"]["id"])
    r = worker.one(again)
    assert r["status"] == "rejected" and r["code"] == "case_exists"


# ---------------------------------------------------------------------------------------------- merge


def test_three_way_merge_applies_conflicts_and_agrees(app, worker, reviewer):
    cid = worker.one(report_op())["case_id"]
    # the reviewer changes risk and description (v2)
    r = reviewer.one(update_op(cid, 1, {"risk_level": "red", "description": "审核员修改"}))
    assert r["status"] == "applied" and r["case_version"] == 2
    # the phone, still at v1, changes risk differently (conflict), description the same way (agree),
    # and category (untouched on the server: applies)
    r = worker.one(update_op(cid, 1, {"risk_level": "blue", "description": "审核员修改",
                                      "category": "public_order"}))
    assert r["status"] == "conflict"
    assert r["case_version"] == 3
    assert r["conflicts"] == [{"field": "risk_level", "base": "yellow", "server": "red", "client": "blue",
                               "conflict_id": r["conflicts"][0]["conflict_id"]}]
    with app.app_context():
        case = db.session.get(Case, cid)
        assert (case.risk_level, case.category, case.description) == ("red", "public_order", "审核员修改")
        conflict = db.session.get(Conflict, r["conflicts"][0]["conflict_id"])
        assert conflict.status == "open" and conflict.device_id == worker.device_id
        assert conflict.op_id and conflict.base_version == 1


def test_base_taken_from_the_event_log(app, worker, reviewer):
    cid = worker.one(report_op())["case_id"]
    reviewer.one(update_op(cid, 1, {"risk_level": "red"}))  # v2
    reviewer.one(update_op(cid, 2, {"description": "第二次修改"}))  # v3
    # the phone edited risk at v2 (knew red): risk unchanged on the server since v2 → applies
    r = worker.one(update_op(cid, 2, {"risk_level": "blue"}))
    assert r["status"] == "applied"
    with app.app_context():
        assert db.session.get(Case, cid).risk_level == "blue"


def test_update_refuses_unknown_fields_and_state(worker):
    cid = worker.one(report_op())["case_id"]
    r = worker.one(update_op(cid, 1, {"state": "closed", "risk_level": "red"}))
    assert r["status"] == "rejected" and r["code"] == "validation_failed"
    assert "unknown_field" in json.dumps(r["errors"])
    assert "changes.state" in r["errors"] or "changes" in r["errors"]


def test_base_version_ahead_is_rejected(worker):
    cid = worker.one(report_op())["case_id"]
    r = worker.one(update_op(cid, 9, {"risk_level": "red"}))
    assert r["status"] == "rejected" and r["code"] == "base_version_ahead"


def test_location_update_converts_gcj02_and_keeps_original(app, worker):
    cid = worker.one(report_op())["case_id"]
    from app.geo.crs import wgs84_to_gcj02

    glat, glon = wgs84_to_gcj02(27.7440, 120.5846)
    r = worker.one(update_op(cid, 1, {"location": {"lat": glat, "lon": glon, "accuracy_m": 5, "crs": "gcj02"}}))
    assert r["status"] == "applied"
    with app.app_context():
        case = db.session.get(Case, cid)
        assert abs(case.lat - 27.7440) < 1e-6 and abs(case.lon - 120.5846) < 1e-6
        assert case.location_original == {"lat": glat, "lon": glon, "crs": "gcj02"}


# ---------------------------------------------------------------------------------------------- notes


def test_notes_always_merge_and_are_idempotent_by_note_id(app, worker, reviewer):
    cid = worker.one(report_op())["case_id"]
    reviewer.one(update_op(cid, 1, {"risk_level": "red"}))
    note = note_op(cid, photos=[fake_hash("after")])
    r = worker.one(note)
    assert r["status"] == "applied" and r["missing_photos"] == [fake_hash("after")]
    same_note_other_op = note_op(cid, note_id=note["note"]["id"])
    assert worker.one(same_note_other_op)["status"] == "applied"
    with app.app_context():
        assert count(CaseNote, CaseNote.case_id == cid) == 1
        assert count(CasePhoto, CasePhoto.case_id == cid) == 1


# ---------------------------------------------------------------------------------------------- transitions


def test_transitions_from_the_field_and_stale_transition(app, client, auth, worker, reviewer):
    cid = worker.one(report_op())["case_id"]
    r = reviewer.one(transition_op(cid, 1, "accept"))
    assert r["status"] == "applied" and r["case_version"] == 2
    r = reviewer.one(transition_op(cid, 2, "assign", assignee="wanggeyuan"))
    assert r["status"] == "applied"
    r = worker.one(transition_op(cid, 3, "start"))
    assert r["status"] == "applied"
    # resolve needs a rectification photo or a note
    r = worker.one(transition_op(cid, 4, "resolve"))
    assert r["status"] == "rejected" and "note" in r["errors"]
    resolve = transition_op(cid, 4, "resolve", note={"id": new_id(), "text": "已清理", "photos": [fake_hash("fixed")]})
    r = worker.one(resolve)
    assert r["status"] == "applied"
    # a second phone that also resolved offline from v4: already done
    other = Phone(client, auth, "worker_a2")  # not in this grid: out of scope
    r = other.one(transition_op(cid, 4, "resolve", note={"id": new_id(), "text": "x"}))
    assert r["status"] == "held" and r["code"] == "unknown_case"  # out of scope looks like unknown
    second = Phone(client, auth, "wanggeyuan")
    r = second.one(transition_op(cid, 4, "resolve", note={"id": new_id(), "text": "我也处理了"}))
    assert r["status"] == "applied" and "stale_transition" in r["flags"]
    with app.app_context():
        case = db.session.get(Case, cid)
        assert case.state == "resolved"
        assert count(CasePhoto, CasePhoto.case_id == cid, CasePhoto.role == "rectification") == 1
        assert count(CaseNote, CaseNote.case_id == cid) == 2


def test_impossible_transition_at_base_is_rejected_and_now_is_conflict(app, worker, reviewer):
    cid = worker.one(report_op())["case_id"]
    # a grid worker may not accept
    r = worker.one(transition_op(cid, 1, "accept"))
    assert r["status"] == "rejected" and r["code"] == "forbidden"
    # start from reported was never possible
    r = worker.one(transition_op(cid, 1, "start"))
    assert r["status"] == "rejected" and r["code"] == "transition_not_allowed"
    reviewer.one(transition_op(cid, 1, "accept"))
    reviewer.one(transition_op(cid, 2, "assign", assignee="wanggeyuan"))  # v3
    # the reviewer suspends it (v4) while the worker, at v3, starts offline: start is still possible
    r = reviewer.one(transition_op(cid, 3, "suspend", reason="等待物业答复"))
    assert r["status"] == "applied"
    r = worker.one(transition_op(cid, 3, "start"))
    assert r["status"] == "applied" and "stale_transition" not in r["flags"]
    # suspend needs a reason; resume needs a suspended case
    r = reviewer.one(transition_op(cid, 5, "suspend"))
    assert r["status"] == "rejected" and "reason" in r["errors"]


def test_state_conflict_when_the_case_moved_on(app, worker, reviewer):
    cid = worker.one(report_op())["case_id"]
    reviewer.one(transition_op(cid, 1, "accept"))
    reviewer.one(transition_op(cid, 2, "assign", assignee="wanggeyuan"))  # v3, assigned
    # the reviewer resolves it themselves online (v4 resolved), then closes it (v5)
    reviewer.one(transition_op(cid, 3, "resolve", note={"id": new_id(), "text": "物业已处理"}))
    reviewer.one(transition_op(cid, 4, "verify_close"))
    # the worker, offline at v3, starts: impossible now (closed), possible at base → conflict on state
    r = worker.one(transition_op(cid, 3, "start"))
    assert r["status"] == "conflict"
    assert r["conflicts"][0]["field"] == "state"
    assert r["conflicts"][0]["server"] == "closed" and r["conflicts"][0]["client"] == "in_progress"


# ---------------------------------------------------------------------------------------------- held


def test_ops_on_an_unknown_case_are_held_and_applied_when_it_arrives(app, client, auth, worker):
    report = report_op()
    cid = report["report"]["id"]
    note = note_op(cid, text="先到的备注")
    update = update_op(cid, 1, {"risk_level": "red"})
    r = worker.sync(note, update)["results"]
    assert [x["status"] for x in r] == ["held", "held"]
    assert r[0]["code"] == "unknown_case"
    # replaying a held op says held again
    assert worker.one(note)["status"] == "held"
    # the report arrives from ANOTHER phone of the same user
    other = Phone(client, auth, "wanggeyuan")
    assert other.one(report)["status"] == "applied"
    with app.app_context():
        case = db.session.get(Case, cid)
        assert case.risk_level == "red"
        assert case.version == 3
        assert count(HeldOp) == 0
        assert count(OpLog, OpLog.op_id.in_([note["op_id"], update["op_id"]])) == 2
    # the held ops are now duplicates with their final result
    replay = worker.sync(note, update)["results"]
    assert [x["status"] for x in replay] == ["duplicate", "duplicate"]
    assert replay[0]["was_held"] is True


def test_held_orphans_listed_for_reviewers(app, client, auth, worker):
    worker.one(note_op(new_id()))
    h = auth.headers("reviewer")
    r = client.get("/api/v1/sync/orphans?older_than_hours=0", headers=h)
    assert r.status_code == 200
    assert len(r.get_json()) == 1 and r.get_json()[0]["username"] == "wanggeyuan"
    assert client.get("/api/v1/sync/orphans?older_than_hours=0", headers=auth.headers("reviewer_b")).get_json() == []
    assert client.get("/api/v1/sync/orphans", headers=h).get_json() == []  # not old enough yet
    assert client.get("/api/v1/sync/orphans", headers=auth.headers("wanggeyuan")).status_code == 403


# ---------------------------------------------------------------------------------------------- flags


def test_outside_micro_grid_and_found_from_location(app, worker):
    # stated micro-grid 1-2, location well inside 1-1: flagged (beyond accuracy + tolerance)
    r = worker.one(report_op(micro_grid=MICRO_A1_2))
    assert r["status"] == "applied" and "outside_micro_grid" in r["flags"]
    # no micro-grid: found from the location
    op = report_op(micro_grid=None)
    r = worker.one(op)
    assert r["status"] == "applied" and "micro_grid_from_location" in r["flags"]
    with app.app_context():
        assert db.session.get(Case, op["report"]["id"]).micro_grid_code == MICRO_A1_1


def test_no_micro_grid_anywhere_is_rejected(worker):
    r = worker.one(report_op(micro_grid=None, lat=30.0, lon=110.0))
    assert r["status"] == "rejected" and r["code"] == "no_micro_grid"


def test_clock_skew_flagged_both_times_kept(app, worker):
    op = report_op()
    body = worker.sync(op, client_time="2024-01-01T00:00:00+08:00")
    assert body["clock_skew_s"] < -3600
    assert "clock_skew" in body["results"][0]["flags"]
    with app.app_context():
        case = db.session.get(Case, op["report"]["id"])
        assert case.clock_skew_s < -3600
        assert case.captured_at_raw == "2026-11-22T08:03:11+08:00"
        assert case.reported_at.year == 2026 or case.reported_at.year > 2024


def test_possible_duplicate_within_50m_same_category(worker):
    first = worker.one(report_op())
    near = worker.one(report_op(lat=INSIDE_A1_1[0] + 0.0002, lon=INSIDE_A1_1[1]))  # ~22 m north
    assert "possible_duplicate" in near["flags"] and near["duplicate_of"] == [first["case_id"]]
    far = worker.one(report_op(lat=INSIDE_A1_1[0] + 0.001, lon=INSIDE_A1_1[1]))  # ~110 m
    assert "possible_duplicate" not in far["flags"]
    other_kind = worker.one(report_op(category="sanitation"))
    assert "possible_duplicate" not in other_kind["flags"]


def test_redirected_after_merge(app, worker, reviewer):
    a = worker.one(report_op())["case_id"]
    b = worker.one(report_op(category="sanitation"))["case_id"]
    r = reviewer.one(transition_op(b, 1, "merge", target=a))
    assert r["status"] == "applied"
    r = worker.one(note_op(b, text="补充说明"))
    assert r["status"] == "applied" and "redirected" in r["flags"] and r["case_id"] == a
    with app.app_context():
        assert count(CaseNote, CaseNote.case_id == a) == 1


# ---------------------------------------------------------------------------------------------- scope


def test_report_outside_scope_is_rejected_and_writes_nothing(app, worker):
    r = worker.one(report_op(micro_grid=MICRO_B1_1))
    assert r["status"] == "rejected" and r["code"] == "out_of_scope"
    with app.app_context():
        assert count(Case) == 0 and count(OpLog) == 0


@pytest.mark.parametrize("username,allowed", [("zhiyuanzhe", True), ("volunteer_a2", False), ("worker_a2", False),
                                              ("reviewer", True), ("village_reviewer", True), ("reviewer_b", False),
                                              ("worker_b", False), ("volunteer_b", False), ("admin", True)])
def test_scope_matrix_for_notes_on_a_volunteers_case(client, auth, username, allowed):
    owner = Phone(client, auth, "zhiyuanzhe")
    cid = owner.one(report_op())["case_id"]
    r = Phone(client, auth, username).one(note_op(cid))
    if allowed:
        assert r["status"] == "applied", r
    else:  # answered exactly as a note on a case nobody reported
        unknown = Phone(client, auth, username).one(note_op(new_id()))
        assert {**r, "op_id": None, "case_id": None} == {**unknown, "op_id": None, "case_id": None}
        assert r["status"] == "held" and r["code"] == "unknown_case", r


def test_volunteer_may_not_edit_after_acceptance(client, auth, reviewer):
    volunteer = Phone(client, auth, "zhiyuanzhe")
    cid = volunteer.one(report_op())["case_id"]
    assert volunteer.one(update_op(cid, 1, {"description": "补充"}))["status"] == "applied"
    reviewer.one(transition_op(cid, 2, "accept"))
    r = volunteer.one(update_op(cid, 3, {"description": "再改"}))
    assert r["status"] == "rejected" and r["code"] == "forbidden"
    r = volunteer.one(transition_op(cid, 3, "assign", assignee="wanggeyuan"))
    assert r["status"] == "rejected" and r["code"] == "forbidden"


def test_volunteer_may_not_report_staff_categories(client, auth):
    r = Phone(client, auth, "zhiyuanzhe").one(report_op(category="dispute"))
    assert r["status"] == "rejected" and r["code"] == "forbidden"


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("mutate,where", [
    (lambda op: op["report"]["location"].update(lat=91), "report.location.lat"),
    (lambda op: op["report"].update(category="no_such_thing"), "report.category"),
    (lambda op: op["report"].update(description="长" * 10_000), "report.description"),
    (lambda op: op["report"].update(risk_level="purple"), "report.risk_level"),
    (lambda op: op["report"].update(description="bad\x00nul"), "report.description"),
    (lambda op: op["report"].update(photos=["not-a-hash"]), "report.photos.0"),
    (lambda op: op["report"].update(id="not-a-uuid"), "report.id"),
    (lambda op: op["report"].update(status="closed"), "report.status"),
    (lambda op: op["report"]["location"].update(lat="north"), "report.location.lat"),
    (lambda op: op.pop("op_id"), "op_id"),
    (lambda op: op.update(type="case.delete"), "type"),
])
def test_one_bad_op_never_stops_the_others(app, worker, mutate, where):
    bad = report_op()
    mutate(bad)
    good = report_op()
    results = worker.sync(bad, good)["results"]
    assert results[0]["status"] == "rejected"
    assert where in results[0]["errors"], results[0]
    assert results[0]["detail"]
    assert results[1]["status"] == "applied"


def test_nan_and_infinity_are_refused_per_op(client, worker):
    good = report_op()
    body = json.dumps({"device_id": worker.device_id, "ops": [report_op(), good]})
    body = body.replace('"accuracy_m": 8', '"accuracy_m": NaN', 1)
    r = client.post("/api/v1/sync", data=body, content_type="application/json", headers=worker.headers)
    assert r.status_code == 200
    results = r.get_json()["results"]
    assert results[0]["status"] == "rejected" and "report.location.accuracy_m" in results[0]["errors"]
    assert results[1]["status"] == "applied"


def test_emoji_and_mixed_scripts_are_kept(app, worker):
    text = "井盖缺失🚧 near 学校门口 ⚠️ مرحبا Ωmega"
    op = report_op(description=text)
    assert worker.one(op)["status"] == "applied"
    with app.app_context():
        assert db.session.get(Case, op["report"]["id"]).description == text


@pytest.mark.parametrize("body,status,code", [
    (b"{not json", 400, "invalid_json"),
    (b"[1, 2]", 422, "validation_failed"),
    (b'{"ops": []}', 422, "validation_failed"),
    (b'{"device_id": "x", "ops": "nope"}', 422, "validation_failed"),
])
def test_unreadable_envelopes(client, worker, body, status, code):
    r = client.post("/api/v1/sync", data=body, content_type="application/json", headers=worker.headers)
    assert r.status_code == status
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["code"] == code


def test_envelope_limits(app, client, worker):
    app.config["SYNC_MAX_OPS"] = 3
    r = client.post("/api/v1/sync", json={"device_id": worker.device_id, "ops": [report_op() for _ in range(4)]},
                    headers=worker.headers)
    assert r.status_code == 413 and r.get_json()["code"] == "too_many_ops"
    app.config["SYNC_MAX_BYTES"] = 2000
    r = client.post("/api/v1/sync", json={"device_id": worker.device_id,
                                          "ops": [report_op(description="长" * 1500)]}, headers=worker.headers)
    assert r.status_code == 413 and r.get_json()["code"] == "payload_too_large"


def test_device_must_match_the_token(client, worker):
    r = client.post("/api/v1/sync", json={"device_id": "someone-elses-phone", "ops": []}, headers=worker.headers)
    assert r.status_code == 422 and r.get_json()["code"] == "device_mismatch"


def test_expired_token_then_resend_is_safe(client, worker):
    op = report_op()
    assert worker.one(op)["status"] == "applied"
    r = client.post("/api/v1/sync", json={"device_id": worker.device_id, "ops": [op]},
                    headers={"Authorization": "Bearer expired.token.here"})
    assert r.status_code == 401
    assert worker.one(op)["status"] == "duplicate"


# ---------------------------------------------------------------------------------------------- devices


def test_devices_show_unsent_work(client, auth, worker):
    worker.sync(report_op(), outbox={"pending": 57, "oldest": "2026-11-20T08:00:00+08:00"})
    r = client.get("/api/v1/devices?unsent=true", headers=auth.headers("reviewer"))
    devices = r.get_json()
    mine = [d for d in devices if d["id"] == worker.device_id]
    assert mine and mine[0]["outbox_pending"] == 57 and mine[0]["outbox_oldest"].startswith("2026-11-20")
    assert mine[0]["last_sync_at"]
    other = client.get("/api/v1/devices", headers=auth.headers("reviewer_b")).get_json()
    assert worker.device_id not in {d["id"] for d in other}


def test_a_batch_of_updates_writes_each_case_once(app, worker):
    """Merged fields and the change stamp go out together: one UPDATE per changed case (a second one for
    the stamp alone would make a new row version and an entry in every index of ``cases`` again)."""
    from sqlalchemy import event

    ids = [r["case_id"] for r in worker.sync(*(report_op() for _ in range(3)))["results"]]
    updates = []

    def count_updates(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE CASES "):
            updates.extend(parameters if executemany else [parameters])

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count_updates)
    try:
        out = worker.sync(*(update_op(cid, 1, {"risk_level": "red", "description": f"复查 {i}"})
                            for i, cid in enumerate(ids)))
    finally:
        event.remove(engine, "before_cursor_execute", count_updates)
    assert [r["status"] for r in out["results"]] == ["applied"] * 3
    assert len(updates) == 3
    with app.app_context():
        stamps = [db.session.get(Case, cid).change_seq for cid in ids]
        assert len(set(stamps)) == 3 and min(stamps) > 0


def test_the_write_transaction_reads_neither_the_user_nor_the_device(app, worker):
    """Inside the write transaction (on SQLite, the one writer's turn) nothing is read that could be read
    before it: the user loaded by the request's read part stays loaded, and the phone's contact and outbox
    go in as one upsert. The device is still recorded, created on its first sync and updated after."""
    from sqlalchemy import event

    from app.devices.models import Device

    statements, inside = [], []

    def watch(conn, cursor, statement, parameters, context, executemany):
        text = statement.lstrip().upper()
        if text.startswith("BEGIN IMMEDIATE"):
            inside.append(True)
        statements.append((bool(inside), text))

    def done(conn):
        inside.clear()

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", watch)
    event.listen(engine, "commit", done)
    try:
        first = worker.sync(report_op(), outbox={"pending": 3, "oldest": "2026-11-25T07:00:00+00:00"})
        second = worker.sync(report_op(), outbox={"pending": 0})
    finally:
        event.remove(engine, "before_cursor_execute", watch)
        event.remove(engine, "commit", done)
    assert [r["status"] for r in first["results"] + second["results"]] == ["applied"] * 2
    written = [text for held, text in statements if held]
    if engine.dialect.name == "sqlite":  # the write turn is visible as BEGIN IMMEDIATE
        assert written and not [t for t in written if "FROM USERS" in t or "FROM DEVICES" in t]
    assert not [t for _, t in statements if t.startswith("SELECT") and "FROM DEVICES" in t]
    with app.app_context():
        device = db.session.get(Device, worker.device_id)
        assert device.outbox_pending == 0 and device.outbox_oldest is None  # the second sync's outbox
        assert device.last_sync_at is not None and device.first_seen <= device.last_sync_at


def test_a_resent_outbox_answered_in_full_still_records_the_device_and_lists_missing_photos(app, worker):
    """A batch of nothing but replays applies nothing; its one write transaction records the phone's contact
    and outbox, and each answer still says which photos the server lacks."""
    from app.devices.models import Device

    photo = fake_hash("replayed")
    ops = [report_op(photos=[photo]), report_op()]
    first = worker.sync(*ops)["results"]
    with app.app_context():
        seen = db.session.get(Device, worker.device_id).last_sync_at
    again = worker.sync(*ops, outbox={"pending": 2, "oldest": "2026-11-25T07:00:00+00:00"})["results"]
    assert [r["status"] for r in again] == ["duplicate", "duplicate"]
    assert again[0]["missing_photos"] == [photo] and again[1]["missing_photos"] == []
    assert again[0]["case_id"] == first[0]["case_id"]
    with app.app_context():
        device = db.session.get(Device, worker.device_id)
        assert device.last_sync_at >= seen and device.outbox_pending == 2
        assert count(Case) == 2
