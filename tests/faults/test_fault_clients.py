"""Hostile clocks and stale outboxes against a real gunicorn: devices two years off in either direction,
and a phone replaying a week-old outbox whose ops were applied long ago, mixed with a few new ones."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from factories import TEST_USERS
from faultkit import Phone, check_database, check_ops
from helpers import note_op, report_op, update_op
from server import start_server
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.slow

TWO_YEARS = timedelta(days=730)
CST = timezone(timedelta(hours=8))


def _parse(value):
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def test_clock_skewed_devices(database_url, db_kind, tmp_path):
    started = time.monotonic()
    server = start_server(database_url, tmp_path, workers=1, worker_class="gthread", threads=2)
    acked: dict[str, str] = {}
    sent: dict[str, dict] = {}
    try:
        for sign, user in ((1, "wanggeyuan"), (-1, "worker_a2")):
            phone = Phone(server.url, user, TEST_USERS[user][2])
            device_now = datetime.now(timezone.utc) + sign * TWO_YEARS
            captured = (device_now - timedelta(minutes=5)).astimezone(CST).isoformat()
            grid = {"wanggeyuan": {}, "worker_a2": {"micro_grid": "3303810010010201", "lat": 27.7437,
                                                     "lon": 120.5907}}[user]
            report = report_op(captured_at=captured, description=f"时钟偏差{sign:+d}两年", **grid)
            note = note_op(report["report"]["id"], text="设备时间错误")
            note["note"]["captured_at"] = captured
            r = phone.sync([report, note], client_time=device_now.isoformat())
            assert r.status_code == 200, r.text
            body = r.json()
            assert abs(body["clock_skew_s"] - sign * TWO_YEARS.total_seconds()) < 120, body["clock_skew_s"]
            for op, result in zip((report, note), body["results"]):
                assert result["status"] == "applied", result
                assert "clock_skew" in result["flags"], result
                acked[op["op_id"]] = "applied"
            sent[report["report"]["id"]] = {"captured": captured, "client_time": device_now, "sign": sign}
        reviewer = Phone(server.url, "reviewer", TEST_USERS["reviewer"][2])
        for case_id in sent:
            r = reviewer.get(f"/api/v1/cases/{case_id}")
            assert r.status_code == 200, r.text
            case = r.json()
            assert "clock_skew" in case["flags"]
            # Its clock runs from the server's time: neither two years overdue nor two years ahead.
            assert case.get("light", "green") == "green", case.get("light")
    finally:
        server.stop()

    server_now = datetime.now(timezone.utc)
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            for case_id, s in sent.items():
                reported_at, captured_raw, captured_at, skew = conn.execute(text(
                    "SELECT reported_at, captured_at_raw, captured_at, clock_skew_s FROM cases WHERE id = :id"),
                    {"id": case_id}).one()
                # Both times kept: the device's as sent (with its offset), the server's as the report time.
                assert datetime.fromisoformat(captured_raw) == datetime.fromisoformat(s["captured"])
                assert abs((_parse(captured_at) - datetime.fromisoformat(s["captured"])).total_seconds()) < 1
                assert abs((server_now - _parse(reported_at)).total_seconds()) < 120
                assert abs(skew - s["sign"] * TWO_YEARS.total_seconds()) < 120
                client_times = [_parse(t) for (t,) in conn.execute(text(
                    "SELECT client_time FROM case_events WHERE case_id = :id"), {"id": case_id})]
                assert len(client_times) == 2
                assert all(abs((t - s["client_time"]).total_seconds()) < 5 for t in client_times)
                # Deadlines from the server's clock: the accept stage started now and ends within days.
                stage_start, due = conn.execute(text(
                    "SELECT started_at, due_at FROM case_stages WHERE case_id = :id"), {"id": case_id}).one()
                assert abs((server_now - _parse(stage_start)).total_seconds()) < 120
                assert timedelta(0) < _parse(due) - _parse(stage_start) < timedelta(days=15)
    finally:
        engine.dispose()
    check_ops(database_url, acked)
    check_database(database_url, db_kind)
    assert time.monotonic() - started < 60


def test_week_old_outbox_replayed(database_url, db_kind, tmp_path):
    started = time.monotonic()
    outbox = []
    for i in range(20):
        op = report_op(description=f"井盖缺失（第{i}号）", risk="blue")
        outbox.append(op)
        outbox.append(note_op(op["report"]["id"], text=f"拍照补充 {i}"))
        if i % 2:
            outbox.append(update_op(op["report"]["id"], 2, {"risk_level": "red"}))
    server = start_server(database_url, tmp_path, workers=2, worker_class="gthread", threads=2)
    try:
        phone = Phone(server.url, "wanggeyuan", TEST_USERS["wanggeyuan"][2], device_id="replay-phone")
        first: dict[str, dict] = {}
        for k in range(0, len(outbox), 20):
            r = phone.sync(outbox[k:k + 20])
            assert r.status_code == 200, r.text
            for op, result in zip(outbox[k:k + 20], r.json()["results"]):
                assert result["status"] == "applied", result
                first[op["op_id"]] = result
        engine = create_engine(database_url)
        with engine.begin() as conn:  # a week passes
            conn.execute(text("UPDATE op_log SET received_at = :t, applied_at = :t"),
                         {"t": datetime.now(timezone.utc) - timedelta(days=7)})
            counts_before = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                             for t in ("cases", "case_events", "case_notes", "op_log")}
        engine.dispose()

        # The phone never got the answers: a week later it logs in again and sends the whole outbox, with a
        # few ops queued since mixed in.
        phone = Phone(server.url, "wanggeyuan", TEST_USERS["wanggeyuan"][2], device_id="replay-phone")
        fresh = []
        for i in range(5):
            op = report_op(description=f"新上报（第{i}号）")
            fresh.append(op)
        replay = list(outbox)
        for i, op in enumerate(fresh):
            replay.insert(7 * i + 3, op)
        fresh_ids = {op["op_id"] for op in fresh}
        acked = {op_id: "applied" for op_id in first}
        for k in range(0, len(replay), 25):
            batch = replay[k:k + 25]
            r = phone.sync(batch, outbox={"pending": len(replay) - k, "oldest": "2026-11-18T08:00:00+08:00"})
            assert r.status_code == 200, r.text
            for op, result in zip(batch, r.json()["results"]):
                if op["op_id"] in fresh_ids:
                    assert result["status"] == "applied", result
                    acked[op["op_id"]] = "applied"
                    continue
                stored = first[op["op_id"]]
                assert result["status"] == "duplicate", result
                assert result["original_status"] == "applied"
                assert (result["case_id"], result["case_version"], result["flags"]) == \
                    (stored["case_id"], stored["case_version"], stored["flags"])
    finally:
        server.stop()
    engine = create_engine(database_url)
    with engine.connect() as conn:
        counts_after = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                        for t in ("cases", "case_events", "case_notes", "op_log")}
    engine.dispose()
    assert counts_after == {"cases": counts_before["cases"] + 5, "case_events": counts_before["case_events"] + 5,
                            "case_notes": counts_before["case_notes"], "op_log": counts_before["op_log"] + 5}
    check_ops(database_url, acked)
    check_database(database_url, db_kind)
    assert time.monotonic() - started < 60
