"""PostgreSQL restarted under a phone that keeps syncing (``fast`` then ``immediate``, a crash): the phone
retries what got no answer or a ``retry``, the app's pool recovers (pool_pre_ping), and afterwards every
acknowledged op is in the database exactly once. PostgreSQL only."""

from __future__ import annotations

import threading
import time

import pytest
from factories import TEST_USERS
from faultkit import check_database, check_ops
from helpers import note_op, report_op
from server import ApiClient, NoAnswer, start_server

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]  # deselected in the SQLite pass

N_REPORTS = 60
BATCH = 10
BUDGET_S = 50.0


def test_postgresql_restart_mid_stream(database_url, db_kind, tmp_path, request):
    assert db_kind == "postgresql"
    pg = request.getfixturevalue("pg_server")
    started = time.monotonic()
    ops = []
    for i in range(N_REPORTS):
        op = report_op(description=f"消防通道堵塞（重启测试第{i}号）")
        ops.append(op)
        if i % 2:
            ops.append(note_op(op["report"]["id"], text=f"已复查 {i}"))
    server = start_server(database_url, tmp_path, workers=2, worker_class="gthread", threads=4)
    phone = ApiClient(server.url, "wanggeyuan", TEST_USERS["wanggeyuan"][2], "pg-restart-phone", timeout=10)
    acked: dict[str, str] = {}
    restarts: list[str] = []
    error: list[BaseException] = []
    progress = threading.Event()

    def restarter():
        try:
            for mode in ("fast", "immediate"):
                progress.wait(10)
                progress.clear()
                pg.restart(mode)
                restarts.append(mode)
        except BaseException as exc:  # noqa: BLE001
            error.append(exc)

    thread = threading.Thread(target=restarter, daemon=True)
    unanswered = retried = 0
    no_answers: list[str] = []
    try:
        phone.login()
        thread.start()
        pending = list(ops)
        while pending:
            assert time.monotonic() - started < BUDGET_S, f"{len(pending)} ops pending, restarts {restarts}"
            if len(restarts) < 2 and len(pending) <= BATCH:
                time.sleep(0.05)  # hold the last batch until both restarts happened mid-stream
                progress.set()
                continue
            batch = pending[:BATCH]
            try:
                answer = phone.sync(batch)
            except NoAnswer as exc:
                unanswered += 1
                no_answers.append(str(exc))
                time.sleep(0.2)
                continue
            done = set()
            for op, result in zip(batch, answer["results"]):
                assert result["status"] in ("applied", "duplicate", "retry"), result
                if result["status"] == "retry":
                    retried += 1
                    continue
                acked.setdefault(op["op_id"], result["status"] if result["status"] != "duplicate"
                                 else result["original_status"])
                done.add(op["op_id"])
            pending = [op for op in pending if op["op_id"] not in done]
            progress.set()
        thread.join(20)
        assert not error, repr(error)
        assert restarts == ["fast", "immediate"]
        # While the database was away the server said so (503, or no answer while a worker reconnected),
        # never "internal error".
        assert not [m for m in no_answers if "HTTP 500" in m], no_answers
        # The pool recovered: reads work on the connections that replaced the broken ones.
        for _ in range(4):
            assert phone.get("/api/v1/me").status_code == 200
    finally:
        server.stop()
    assert set(acked) == {op["op_id"] for op in ops}
    assert set(acked.values()) == {"applied"}
    check_ops(database_url, acked)
    check_database(database_url, db_kind)
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cases")).scalar() == N_REPORTS
        assert conn.execute(text("SELECT count(*) FROM case_notes")).scalar() == N_REPORTS // 2
        assert conn.execute(text("SELECT count(*) FROM op_log")).scalar() == len(ops)
    engine.dispose()
    elapsed = time.monotonic() - started
    print(f"\n{len(ops)} ops, restarts {restarts}, {unanswered} unanswered, {retried} answered retry, "
          f"{elapsed:.1f}s")
    assert elapsed < 60
