"""SQLite writers take turns through the write-turn lock file: a second writer waits for the first's
commit, and gets the lock within milliseconds of it (no busy-handler sleeps)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text

from app.database import WriteTurn, reset_begin_mode, set_begin_mode


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


def test_the_turn_is_handed_on_after_the_commit_not_before(tmp_path, monkeypatch):
    """When a writer hands on its turn, its COMMIT is done: the next writer's BEGIN IMMEDIATE finds SQLite's
    lock free at once (handed on before it, the next writer met the lock and slept in SQLite's busy
    handler). A rolled-back writer hands on a free lock too."""
    import sqlite3

    path = tmp_path / "db.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    seen = []
    release = WriteTurn.release

    def release_and_look(turn):
        if turn.held:
            probe = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
                seen.append("free")
            except sqlite3.OperationalError as exc:
                seen.append(str(exc))
            finally:
                probe.close()
        release(turn)

    monkeypatch.setattr(WriteTurn, "release", release_and_look)
    token = set_begin_mode("IMMEDIATE")
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(RuntimeError), engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
            raise RuntimeError("an op failed")
    finally:
        reset_begin_mode(token)
    assert seen == ["free", "free"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM t")).scalars().all() == [1]


def test_writers_checkpoint_the_wal_after_their_turn(tmp_path):
    """Every CHECKPOINT_EVERY_COMMITS commits a writer runs a passive checkpoint once its turn is handed on;
    SQLite's own, which would run inside a COMMIT, waits for a larger WAL."""
    from sqlalchemy import event

    from app.database import CHECKPOINT_EVERY_COMMITS, WAL_AUTOCHECKPOINT_PAGES

    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    traced = []

    @event.listens_for(engine, "connect")
    def trace(dbapi_connection, record):
        dbapi_connection.set_trace_callback(traced.append)

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == WAL_AUTOCHECKPOINT_PAGES
    token = set_begin_mode("IMMEDIATE")
    try:
        for i in range(2 * CHECKPOINT_EVERY_COMMITS):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": i})
    finally:
        reset_begin_mode(token)
    checkpoints = [i for i, sql in enumerate(traced) if "wal_checkpoint" in sql]
    assert len(checkpoints) == 2
    # each after a COMMIT, never inside a transaction
    assert all(traced[i - 1] == "COMMIT" for i in checkpoints)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2 * CHECKPOINT_EVERY_COMMITS


# --- insert_many: SQLAlchemy's INSERT without its per-row work ----------------------------------------


def _scratch_tables():
    from sqlalchemy import JSON, Boolean, Column, Integer, MetaData, String, Table
    from sqlalchemy.dialects.postgresql import JSONB

    from app.database import UTCDateTime

    meta = MetaData()

    def make(name):
        return Table(name, meta, Column("id", String(36), primary_key=True), Column("at", UTCDateTime()),
                     Column("data", JSON), Column("flags", JSON().with_variant(JSONB(), "postgresql")),
                     Column("done", Boolean), Column("n", Integer), Column("note", String(100)),
                     Column("stamp", UTCDateTime(), default=lambda: datetime(2020, 1, 1, tzinfo=timezone.utc)))
    return meta, make("im_fast"), make("im_orm")



def test_insert_many_stores_exactly_what_sqlalchemy_stores(app):
    """Same rows through insert_many and through SQLAlchemy's executemany: the very same stored values
    (SQLite's timestamp text, JSON null against SQL NULL, booleans, non-UTC offsets), read back raw."""
    from sqlalchemy import insert

    from app.database import _insert_plans, insert_many
    from app.extensions import db

    meta, fast, orm = _scratch_tables()
    cst = timezone(timedelta(hours=8))
    rows = [{"id": f"r{i}", "at": datetime(2026, 11, 25, 20, 30, 15, i * 1000, tzinfo=cst) if i % 3 else None,
             "data": {"字段": "值", "n": i} if i % 2 else None, "flags": ["outside_micro_grid"] if i % 2 else [],
             "done": bool(i % 2), "n": i, "note": "网格员 📷" if i % 4 else None, "stamp": None}
            for i in range(7)]
    # one instant in two offsets, and one timestamp object shared by two rows (converted once)
    rows[5]["at"] = rows[6]["at"] = rows[4]["at"].astimezone(timezone.utc)
    rows[1]["stamp"] = rows[4]["at"]
    with app.app_context():
        meta.create_all(db.engine)
        with db.engine.begin() as conn:
            insert_many(conn, fast, rows)
            conn.execute(insert(orm), rows)
            plan = _insert_plans[(fast, tuple(rows[0]), conn.dialect.name)]
            assert plan is not None  # the fast path ran: multi-row INSERTs on SQLite, COPY on PostgreSQL
            assert (plan[3] is not None) == (conn.dialect.name == "postgresql")
            columns = "id, at, data, flags, done, n, note, stamp"
            got = conn.exec_driver_sql(f"SELECT {columns} FROM im_fast ORDER BY id").all()
            want = conn.exec_driver_sql(f"SELECT {columns} FROM im_orm ORDER BY id").all()
            assert got == want and len(got) == 7
            assert conn.exec_driver_sql("SELECT count(*) FROM im_fast WHERE data IS NULL").scalar() == \
                conn.exec_driver_sql("SELECT count(*) FROM im_orm WHERE data IS NULL").scalar()
        meta.drop_all(db.engine)


def test_insert_many_on_sqlite_writes_chunks_of_rows_per_statement(app):
    """On SQLite 100 rows go in three multi-row INSERTs (64 + 32 + 4), each row stored whole and in
    order; a statement per row made each row journal every index page it touched."""
    from sqlalchemy import event

    from app.database import insert_many
    from app.extensions import db

    meta, fast, _ = _scratch_tables()
    rows = [{"id": f"r{i:03d}", "at": datetime(2026, 11, 25, tzinfo=timezone.utc) + timedelta(seconds=i),
             "data": {"i": i}, "flags": [], "done": i % 2 == 0, "n": i, "note": f"第{i}条", "stamp": None}
            for i in range(100)]
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("PostgreSQL takes the rows through COPY (the test above)")
        meta.create_all(db.engine)
        sizes = []

        def count(conn, cursor, statement, parameters, context, executemany):
            if "im_fast" in statement and statement.startswith("INSERT"):
                sizes.append(len(parameters) // 8)

        with db.engine.begin() as conn:
            event.listen(conn, "before_cursor_execute", count)
            insert_many(conn, fast, rows)
            event.remove(conn, "before_cursor_execute", count)
            stored = conn.execute(fast.select().order_by(fast.c.id)).all()
        assert sizes == [64, 32, 4]
        assert [(r.id, r.at, r.data, r.done, r.n, r.note) for r in stored] == \
            [(r["id"], r["at"], r["data"], r["done"], r["n"], r["note"]) for r in rows]
        meta.drop_all(db.engine)


def test_insert_many_leaves_defaults_to_sqlalchemy(app):
    """Rows that leave out a column with a Python default go through SQLAlchemy, which fills it in."""
    from app.database import _insert_plans, insert_many
    from app.extensions import db

    meta, fast, _ = _scratch_tables()
    with app.app_context():
        meta.create_all(db.engine)
        with db.engine.begin() as conn:
            insert_many(conn, fast, [{"id": "a", "n": 1}, {"id": "b", "n": 2}])
            assert _insert_plans[(fast, ("id", "n"), conn.dialect.name)] is None
            stamps = conn.execute(fast.select().order_by(fast.c.id)).all()
            assert [row.stamp for row in stamps] == [datetime(2020, 1, 1, tzinfo=timezone.utc)] * 2
        meta.drop_all(db.engine)


def test_insert_many_raises_sqlalchemy_errors_and_keeps_the_transaction_usable(app):
    """A constraint broken inside the batch is SQLAlchemy's IntegrityError (COPY's too), so the sync's
    handlers see what they expect; rolled back to a savepoint, the connection goes on."""
    from sqlalchemy.exc import IntegrityError

    from app.database import insert_many
    from app.extensions import db

    meta, fast, _ = _scratch_tables()
    row = {"id": "same", "at": None, "data": None, "flags": [], "done": False, "n": 1, "note": None, "stamp": None}
    with app.app_context():
        meta.create_all(db.engine)
        with db.engine.begin() as conn:
            insert_many(conn, fast, [row])
            savepoint = conn.begin_nested()
            with pytest.raises(IntegrityError):
                insert_many(conn, fast, [{**row, "id": "other"}, row])
            savepoint.rollback()
            insert_many(conn, fast, [{**row, "id": "later"}])
            assert conn.exec_driver_sql("SELECT id FROM im_fast ORDER BY id").scalars().all() == ["later", "same"]
        meta.drop_all(db.engine)
