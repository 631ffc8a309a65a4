"""Crash safety, proven on a real gunicorn: ``kill -9`` of master and workers at random instants while a
phone streams ~300 ops; the phone resends whatever was not acknowledged. Afterwards the database holds
every acknowledged op exactly once, every report as exactly one case, and an event log without gaps.

Runs on the suite's engine (``--db=sqlite`` by default, ``--db=postgresql``).
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from factories import MICRO_A1_1, MICRO_A1_2, TEST_USERS
from helpers import INSIDE_A1_1, fake_hash, note_op, report_op, update_op
from server import ApiClient, NoAnswer, start_server
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.slow

BATCH = 20
N_OPS = 300
MIN_KILLS = 4
MAX_KILLS = 8
BUDGET_S = 75.0  # the whole test must stay under 90 s
ACK = ("applied", "duplicate", "conflict", "held")

CATEGORIES = ["fire_hazard", "ebike_charging", "gas_safety", "public_order", "sanitation", "road_safety"]
DESCRIPTIONS = ["楼道堆放杂物，堵塞消防通道", "电动车在楼道内违规充电", "液化气瓶放在厨房灶台旁，无防护",
                "小区门口路灯损坏，夜间照明不足", "垃圾桶满溢，无人清运", "路口积水，影响行人通行"]
RISKS = ["red", "yellow", "blue"]


def make_stream(rng: random.Random) -> tuple[list[dict], dict]:
    """~N_OPS ops as a phone would queue them: reports, then notes and edits on its own earlier reports.

    Returns the ops in order and what each case must look like at the end (version, fields, notes)."""
    ops: list[dict] = []
    expect: dict[str, dict] = {}
    while len(ops) < N_OPS:
        if not expect or rng.random() < 0.4:
            i = len(ops)
            micro, (lat, lon) = (MICRO_A1_1, INSIDE_A1_1) if i % 2 else (MICRO_A1_2, (27.7437, 120.5875))
            desc = f"{rng.choice(DESCRIPTIONS)}（第{i}号）"
            op = report_op(micro_grid=micro, lat=lat + rng.uniform(-2e-4, 2e-4), lon=lon + rng.uniform(-2e-4, 2e-4),
                           category=rng.choice(CATEGORIES), risk=rng.choice(RISKS), description=desc,
                           photos=[fake_hash(f"crash-photo-{i}")] if i % 3 == 0 else [])
            report = op["report"]
            expect[report["id"]] = {"version": 1, "risk_level": report["risk_level"], "description": desc,
                                    "notes": [], "create_op": op["op_id"]}
        else:
            case_id = rng.choice(list(expect))
            case = expect[case_id]
            if rng.random() < 0.5:
                op = note_op(case_id, text=f"已到现场查看，第{len(ops)}次记录")
                case["notes"].append(op["note"]["id"])
                case["version"] += 1
            else:
                changes = {}
                if rng.random() < 0.6:
                    changes["risk_level"] = rng.choice([r for r in RISKS if r != case["risk_level"]])
                if not changes or rng.random() < 0.5:
                    changes["description"] = f"{case['description'].split('；')[0]}；更新{len(ops)}"
                op = update_op(case_id, case["version"], changes)
                case.update(changes)
                case["version"] += 1
        ops.append(op)
    return ops, expect


def op_log_counter(database_url: str):
    """A cheap ``count(*) FROM op_log`` on a raw driver connection (no app engine hooks: on SQLite they
    would begin IMMEDIATE and take the write lock) that sees each commit as soon as it is visible."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        import sqlite3

        conn = sqlite3.connect(url.database, isolation_level=None, timeout=30)
    else:
        import psycopg

        conn = psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                               dbname=url.database, autocommit=True)

    def count() -> int:
        return conn.execute("SELECT count(*) FROM op_log").fetchone()[0]

    return count, conn.close


class Killer(threading.Thread):
    """Kills the whole gunicorn at random instants (after the phone made some progress), then restarts it.

    Every other kill strikes at a random delay into a request; the others strike the moment a batch's
    commit becomes visible, to hit the window where an op is applied but its answer has not left yet
    (the phone must then get ``duplicate`` on its resend, never a second application)."""

    def __init__(self, server, progress: threading.Event, done: threading.Event, rng: random.Random,
                 latency: list[float], database_url: str):
        super().__init__(daemon=True)
        self.server, self.progress, self.done, self.rng, self.latency = server, progress, done, rng, latency
        self.database_url = database_url
        self.kills = 0
        self.after_commit_kills = 0
        self.error: BaseException | None = None

    def _strike_after_commit(self, count, limit_s: float) -> bool:
        before = count()
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and not self.done.is_set():
            if count() != before:
                return True
            time.sleep(0.0005)
        return False

    def run(self) -> None:
        count, close = op_log_counter(self.database_url)
        try:
            while self.kills < MAX_KILLS and not self.done.is_set():
                # Wait for one answered batch since the last restart (so the phone always gets further),
                # then strike somewhere inside the next request or two: parsing, applying, committing,
                # or after the commit but before the answer got out.
                while not self.progress.wait(0.05):
                    if self.done.is_set():
                        return
                self.progress.clear()
                typical = sorted(self.latency)[len(self.latency) // 2] if self.latency else 0.1
                if self.kills % 2 and self._strike_after_commit(count, 3 * typical + 0.5):
                    self.after_commit_kills += 1
                else:
                    time.sleep(self.rng.uniform(0, 1.5 * typical))
                if self.done.is_set():
                    return
                self.server.kill()
                self.kills += 1
                time.sleep(self.rng.uniform(0, 0.2))
                self.server.restart()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            close()


def test_kill_minus_nine_loses_nothing_and_applies_nothing_twice(database_url, db_kind, tmp_path):
    started = time.monotonic()
    rng = random.Random(20261122)
    ops, expect = make_stream(rng)
    server = start_server(database_url, tmp_path, workers=2)
    phone = ApiClient(server.url, "wanggeyuan", TEST_USERS["wanggeyuan"][2], "crash-phone-1", timeout=10)
    progress, done = threading.Event(), threading.Event()
    latency: list[float] = []
    killer = Killer(server, progress, done, random.Random(7), latency, database_url)
    acked: dict[str, dict] = {}  # op_id -> first acknowledging result
    statuses: dict[str, list[str]] = {}
    no_answer = 0
    try:
        killer.start()
        pending = list(ops)
        while pending:
            assert time.monotonic() - started < BUDGET_S, (
                f"not done within {BUDGET_S}s: {len(pending)} ops pending, {killer.kills} kills")
            if killer.kills < MIN_KILLS and len(pending) <= BATCH and killer.is_alive():
                # Keep the last batch back until the killer has struck often enough during the stream.
                time.sleep(0.05)
                progress.set()
                continue
            batch = pending[:BATCH]
            t0 = time.monotonic()
            try:
                answer = phone.sync(batch, outbox={"pending": len(pending), "oldest": None})
            except NoAnswer:
                no_answer += 1
                time.sleep(0.1)
                continue
            latency.append(time.monotonic() - t0)
            results = answer["results"]
            assert len(results) == len(batch)
            done_ids = set()
            for op, result in zip(batch, results):
                assert result["op_id"] == op["op_id"]
                statuses.setdefault(op["op_id"], []).append(result["status"])
                assert result["status"] in ACK + ("retry",), (op, result)
                if result["status"] in ACK:
                    acked.setdefault(op["op_id"], result)
                    done_ids.add(op["op_id"])
            pending = [op for op in pending if op["op_id"] not in done_ids]
            progress.set()
    finally:
        done.set()
        killer.join(timeout=40)
        log = server.log_text()
        server.stop()
    assert killer.error is None, f"{killer.error!r}\n{log[-5000:]}"
    assert killer.kills >= MIN_KILLS, killer.kills
    elapsed = time.monotonic() - started
    print(f"\n{db_kind}: {len(ops)} ops, {killer.kills} kills ({killer.after_commit_kills} right after a commit), "
          f"{no_answer} unanswered requests, "
          f"{sum(1 for s in statuses.values() if 'duplicate' in s)} ops answered duplicate, {elapsed:.1f}s")

    # Every op was acknowledged, and the first acknowledgement of each is what it should be.
    assert set(acked) == {op["op_id"] for op in ops}
    for op in ops:
        first = acked[op["op_id"]]
        status = first["status"] if first["status"] != "duplicate" else first["original_status"]
        assert status == "applied", (op, first)

    check_database(database_url, db_kind, ops, expect)
    assert elapsed < 90


def check_database(database_url: str, db_kind: str, ops: list[dict], expect: dict) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            def scalar(sql, **params):
                return conn.execute(text(sql), params).scalar()

            def rows(sql, **params):
                return conn.execute(text(sql), params).all()

            if db_kind == "sqlite":
                assert scalar("PRAGMA integrity_check") == "ok"
                assert rows("PRAGMA foreign_key_check") == []

            op_ids = [op["op_id"] for op in ops]
            logged = dict(rows("SELECT op_id, count(*) FROM op_log GROUP BY op_id"))
            assert all(logged.get(op_id) == 1 for op_id in op_ids), \
                [op_id for op_id in op_ids if logged.get(op_id) != 1][:10]
            assert dict(rows("SELECT op_id, status FROM op_log")) == {op_id: "applied" for op_id in op_ids}
            assert scalar("SELECT count(*) FROM held_ops") == 0

            # Exactly one case per report.create, each created by its op.
            case_rows = {r[0]: r for r in rows(
                "SELECT id, version, risk_level, description, number FROM cases")}
            assert set(case_rows) == set(expect), "cases other than the reports (or missing ones)"
            numbers = [r[4] for r in case_rows.values()]
            assert None not in numbers and len(set(numbers)) == len(numbers)
            creates = dict(rows("SELECT case_id, op_id FROM case_events WHERE action = 'create'"))
            assert creates == {cid: c["create_op"] for cid, c in expect.items()}

            # Versions equal event counts; versions 1..N without gaps or repeats.
            events: dict[str, list[int]] = {}
            for case_id, version in rows("SELECT case_id, version FROM case_events ORDER BY case_id, version"):
                events.setdefault(case_id, []).append(version)
            assert rows("SELECT case_id, version, count(*) FROM case_events GROUP BY case_id, version "
                        "HAVING count(*) > 1") == []
            for case_id, case in expect.items():
                _, version, risk, description, _ = case_rows[case_id]
                assert events[case_id] == list(range(1, version + 1)), case_id
                assert version == case["version"], (case_id, version, case["version"])
                assert (risk, description) == (case["risk_level"], case["description"]), case_id

            # Each op's effects happened exactly once: one event per op.
            per_op = dict(rows("SELECT op_id, count(*) FROM case_events GROUP BY op_id"))
            assert all(per_op.get(op_id) == 1 for op_id in op_ids), \
                [(op_id, per_op.get(op_id)) for op_id in op_ids if per_op.get(op_id) != 1][:10]

            # Every note exactly once, on its case.
            notes = rows("SELECT id, case_id FROM case_notes")
            expected_notes = {nid: cid for cid, c in expect.items() for nid in c["notes"]}
            assert len(notes) == len(expected_notes) and dict(notes) == expected_notes
            assert scalar("SELECT count(*) FROM conflicts") == 0
            # The change stamps are unique (the pull misses nothing).
            assert scalar("SELECT count(DISTINCT change_seq) FROM cases") == len(expect)
    finally:
        engine.dispose()
