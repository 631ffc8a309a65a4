"""SQLite writers take turns through the write-turn lock file: a second writer waits for the first's
commit, and gets the lock within milliseconds of it (no busy-handler sleeps)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, text

from app.database import WriteTurn, set_begin_mode, reset_begin_mode


def test_write_turn_excludes_and_hands_over(tmp_path):
    path = str(tmp_path / "db.sqlite3-writeturn")
    first, second = WriteTurn(path), WriteTurn(path)
    first.acquire()
    assert first.held
    waited = {}

    def wait():
        start = time.monotonic()
        second.acquire()
        waited["s"] = time.monotonic() - start

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.2)
    assert "s" not in waited  # still waiting
    first.release()
    t.join(5)
    assert second.held and 0.15 < waited["s"] < 0.5
    second.release()


def test_write_turn_gives_up_at_its_timeout(tmp_path):
    path = str(tmp_path / "x-writeturn")
    holder, other = WriteTurn(path), WriteTurn(path)
    holder.acquire()
    start = time.monotonic()
    other.acquire(timeout_s=0.1)
    assert not other.held and time.monotonic() - start < 1
    holder.release()


@pytest.mark.parametrize("threads", [4])
def test_concurrent_immediate_writers_on_one_file(tmp_path, threads):
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}", connect_args={"check_same_thread": False})
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE counter (n INTEGER)"))
        conn.execute(text("INSERT INTO counter VALUES (0)"))
    errors = []

    def writer():
        token = set_begin_mode("IMMEDIATE")
        try:
            for _ in range(50):
                with engine.begin() as conn:
                    n = conn.execute(text("SELECT n FROM counter")).scalar_one()
                    conn.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            reset_begin_mode(token)

    workers = [threading.Thread(target=writer) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == threads * 50
    assert (tmp_path / "db.sqlite3-writeturn").exists()
