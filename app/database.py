"""Database plumbing shared by every feature: UTC timestamps, engine set-up for SQLite and PostgreSQL.

SQLite is configured for a server with several worker processes: WAL (readers never block the writer),
``synchronous=FULL`` (an acknowledged op survives power loss), a busy timeout, foreign keys, statement
journals in memory (``temp_store``), and writes that take the write lock when they begin (``BEGIN
IMMEDIATE``), so a transaction never fails half-way with "database is locked" when it upgrades from
reading to writing. Safe (read-only) requests begin deferred so that they run beside the writer.
"""

from __future__ import annotations

import contextvars
import fcntl
import logging
import os
import re
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from sqlalchemy import DateTime, event, insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import Pool
from sqlalchemy.types import TypeDecorator

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Writers checkpoint the WAL themselves, after their turn, every few commits; SQLite's own checkpoint,
# inside a COMMIT and so inside the turn, only past this many pages (a sync batch writes ~700).
CHECKPOINT_EVERY_COMMITS = 8
WAL_AUTOCHECKPOINT_PAGES = 8000

log = logging.getLogger(__name__)

_begin_mode: contextvars.ContextVar[str] = contextvars.ContextVar("sqlite_begin_mode", default="IMMEDIATE")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every engine (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


@contextmanager
def read_only_transactions():
    """Within this block, SQLite transactions begin deferred (for GET requests and reports)."""
    token = _begin_mode.set("DEFERRED")
    try:
        yield
    finally:
        _begin_mode.reset(token)


def set_begin_mode(mode: str):
    return _begin_mode.set(mode)


def reset_begin_mode(token) -> None:
    _begin_mode.reset(token)


@event.listens_for(Engine, "connect")
def _sqlite_on_connect(dbapi_connection, connection_record):
    if type(dbapi_connection).__module__.split(".")[0] not in ("sqlite3", "pysqlite2"):
        return
    # Let SQLAlchemy's "begin" event below issue BEGIN; pysqlite's own would be deferred.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.execute("PRAGMA foreign_keys = ON")
    # A statement's journal (to undo that statement alone) spills to a temporary file past 64 KiB; a case
    # row's INSERT, with its indexes and roll-up triggers, passed that on every row. Temporary tables and
    # sorts are kept in memory too: the queries that sort sort a page or one export's rows.
    cursor.execute("PRAGMA temp_store = MEMORY")
    cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
    path = next((row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"), "")
    cursor.close()
    if path:  # not for in-memory databases
        connection_record.info["gridcase_write_turn"] = WriteTurn(path + "-writeturn")


@event.listens_for(Pool, "checkin")
def _release_on_checkin(dbapi_connection, connection_record):
    turn = connection_record.info.get("gridcase_write_turn") if connection_record is not None else None
    if turn is not None:
        turn.release()


@event.listens_for(Pool, "close")
def _close_turn(dbapi_connection, connection_record):
    turn = connection_record.info.pop("gridcase_write_turn", None) if connection_record is not None else None
    if turn is not None:
        turn.release()
        os.close(turn.fd)


class WriteTurn:
    """Writers to one SQLite file take turns through an advisory lock file before BEGIN IMMEDIATE.

    SQLite's own busy handler makes a waiting writer sleep in steps of up to 100 ms, so two gunicorn
    workers hand the database back and forth with long idle gaps and unfair waits. The lock file is
    polled every millisecond instead, and a dead process's lock is released by the kernel. Each connection
    has its own file description, so threads of one process take turns too.
    """

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.held = False
        self.commits = 0

    def acquire(self, timeout_s: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> None:
        deadline = time.monotonic() + timeout_s
        pause = 0.0002
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.held = True
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return  # let SQLite's busy timeout decide; never wait forever here
                time.sleep(pause)
                pause = min(pause * 2, 0.001)

    def release(self) -> None:
        if self.held:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.held = False


_writer = threading.local()  # .conn: the connection through which this thread holds SQLite's write lock


def sqlite_writer_of_this_thread():
    """The connection of this thread whose transaction began IMMEDIATE and is still open, or None. Another
    connection of the same thread that wanted to write would wait for it for ever (the rate-limit
    counters join it instead: app/ops/ratelimit_store.py)."""
    conn = getattr(_writer, "conn", None)
    if conn is not None and (conn.closed or not conn.in_transaction()):
        _writer.conn = conn = None
    return conn


@event.listens_for(Engine, "begin")
def _sqlite_on_begin(conn):
    if conn.dialect.name == "sqlite":
        mode = _begin_mode.get()
        turn = conn.info.get("gridcase_write_turn")
        if mode == "IMMEDIATE" and turn is not None:
            turn.acquire()
        conn.exec_driver_sql(f"BEGIN {mode}")
        if mode == "IMMEDIATE":
            _writer.conn = conn


def _end_turn(conn, end: str) -> None:
    """SQLAlchemy's commit and rollback events come before the driver's COMMIT or ROLLBACK: handed on
    there, the turn let the next writer's BEGIN IMMEDIATE meet SQLite's own lock, still held by this
    COMMIT, and sleep in SQLite's busy handler (1, 2, 5, 10 ms ...). So a writer ends its transaction
    here, then hands the turn on; the driver's own commit or rollback that follows finds no transaction
    and does nothing."""
    if conn.dialect.name == "sqlite" and getattr(_writer, "conn", None) is conn:
        _writer.conn = None
    turn = conn.info.get("gridcase_write_turn") if conn.dialect.name == "sqlite" else None
    if turn is None or not turn.held:
        return
    dbapi_connection = conn.connection.driver_connection
    try:
        if end == "commit":
            dbapi_connection.commit()
        else:
            dbapi_connection.rollback()
    except conn.dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy would have raised it from its commit
        raise DBAPIError.instance(end.upper(), None, exc, conn.dialect.loaded_dbapi.Error,
                                  dialect=conn.dialect) from exc
    finally:
        turn.release()
    if end == "commit":
        # Checkpoints too run outside the turn: SQLite's own run inside the COMMIT that crosses its
        # threshold. A passive checkpoint copies what the WAL holds into the database beside the next
        # writer, without blocking it (SQLite's is kept, at a higher threshold, as a backstop).
        turn.commits += 1
        if turn.commits % CHECKPOINT_EVERY_COMMITS == 0:
            try:
                dbapi_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except conn.dialect.loaded_dbapi.Error as exc:  # the commit stands; the next one tries again
                log.warning("WAL checkpoint failed: %s", exc)


@event.listens_for(Engine, "commit")
def _sqlite_on_commit(conn):
    _end_turn(conn, "commit")


@event.listens_for(Engine, "rollback")
def _sqlite_on_rollback(conn):
    _end_turn(conn, "rollback")


def normalise_database_url(url: str) -> str:
    """``postgresql://`` (what operators write) selects psycopg 3, not psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


# --- many rows at once ------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_insert_plans: dict[tuple, tuple | None] = {}  # (Table, columns, dialect name) -> plan


def insert_many(connection, table, rows: list[dict]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``table``: what ``connection.execute(insert(table),
    rows)`` does, without SQLAlchemy's per-row work. The statement SQLAlchemy compiles for these columns and
    each column's own bind processor (UTC timestamps, JSON) are worked out once per table and set of
    columns; the rows then go to the driver as plain tuples: on SQLite in multi-row INSERTs of 64, 32, ...
    rows (one statement per chunk, not per row: each statement journals the pages it changes, and a case
    row changes some thirty index pages), on PostgreSQL through COPY (psycopg's executemany pays ~25 µs of
    Python per row, and the server an executor start per row; a multi-row VALUES statement was tried too:
    less server work, more client work). COPY fires the INSERT triggers and checks the constraints of every
    row as INSERT does, and its errors are raised as SQLAlchemy's. A table whose statement would fill in
    column defaults the rows leave out goes through SQLAlchemy."""
    if not rows:
        return
    columns = tuple(rows[0])
    dialect = connection.dialect
    key = (table, columns, dialect.name)  # the Table itself: its columns' types make the plan
    if key not in _insert_plans:
        _insert_plans[key] = _insert_plan(table, columns, dialect)
    plan = _insert_plans[key]
    if plan is None:
        connection.execute(insert(table), rows)
        return
    statement, names, processors, copy_sql = plan
    params = []
    # A batch's rows share their timestamps (the request's "now", a deadline): each distinct one is
    # converted once. Equal instants in other offsets are the same UTC value, so they may share too.
    converted: dict = {}
    for row in rows:
        row_params = [row[name] for name in names]
        for i, process, timestamp in processors:
            value = row_params[i]
            if timestamp:
                if value not in converted:
                    converted[value] = process(value)
                row_params[i] = converted[value]
            else:
                row_params[i] = process(value)
        params.append(tuple(row_params))
    if copy_sql is None:  # SQLite: rows in chunks of 64, 32, ..., 1 per multi-row INSERT
        start = 0
        while start < len(params):
            size = min(_SQLITE_ROWS_PER_INSERT, 1 << (len(params) - start).bit_length() - 1)
            chunk = params[start:start + size]
            if size == 1:
                connection.exec_driver_sql(statement, chunk[0])
            else:
                connection.exec_driver_sql(_sqlite_multi_row(statement, size), tuple(v for row in chunk for v in row))
            start += size
        return
    dbapi_connection = connection.connection.driver_connection
    try:
        with dbapi_connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row_params in params:
                copy.write_row(row_params)
    except connection.dialect.loaded_dbapi.Error as exc:
        # As SQLAlchemy would have raised it (IntegrityError, OperationalError, ...), so callers' handlers
        # work the same; a lost server also invalidates the pooled connection.
        if connection.dialect.is_disconnect(exc, dbapi_connection, None):
            connection.invalidate(exc)
        raise DBAPIError.instance(copy_sql, None, exc, connection.dialect.loaded_dbapi.Error,
                                  dialect=connection.dialect) from exc


_SQLITE_ROWS_PER_INSERT = 64  # x the columns stays under SQLite's 32,766 parameters; few statements to cache


_multi_row_statements: dict[tuple[str, int], str] = {}


def _sqlite_multi_row(statement: str, rows: int) -> str:
    """``INSERT ... VALUES (?, ?)`` for one row made into the same INSERT of ``rows`` rows."""
    key = (statement, rows)
    if key not in _multi_row_statements:
        head, values = statement.rsplit(" VALUES ", 1)
        _multi_row_statements[key] = f"{head} VALUES {', '.join([values] * rows)}"
    return _multi_row_statements[key]


def _insert_plan(table, columns: tuple[str, ...], dialect) -> tuple | None:
    """(SQL with positional placeholders, bind names in their order, [(index, processor, is a UTC
    timestamp)], PostgreSQL's COPY statement or None), or None when the compiled statement binds anything
    but ``columns`` (defaults to fill in: SQLAlchemy's job) or uses a parameter style this does not know."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    statement = compiled.string
    if dialect.paramstyle == "qmark":  # SQLite
        names = tuple(compiled.positiontup or ())
    elif dialect.paramstyle == "pyformat":  # psycopg: %(name)s becomes %s, in order
        names = tuple(_PLACEHOLDER.findall(statement))
        statement = _PLACEHOLDER.sub("%s", statement)
        if statement.count("%") != len(names):  # a literal % somewhere: not ours to rewrite
            return None
    else:
        return None
    if sorted(names) != sorted(columns):
        return None
    bind_processors = compiled._bind_processors
    processors = [(i, bind_processors[name], isinstance(table.c[name].type, UTCDateTime))
                  for i, name in enumerate(names) if bind_processors.get(name)]
    copy_sql = None
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        preparer = dialect.identifier_preparer
        copy_sql = (f"COPY {preparer.format_table(table)} ({', '.join(preparer.quote(table.c[n].name) for n in names)})"
                    " FROM STDIN")
    return statement, names, processors, copy_sql


# ---------------------------------------------------------------------------------------------- errors

_TRANSIENT_SQLSTATES = ("40001", "40P01", "55P03", "57P01", "57P02", "57P03")  # serialization, deadlock,
# lock not available, the server shutting down or restarting
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def transient_error(exc: BaseException) -> bool:
    """A database error that says nothing about the request, so that sending it again later can succeed:
    a lost or refused connection (SQLSTATE class 08, or a driver error without a code), a deadlock, a
    serialization failure, a lock not available, a server going down; SQLite busy or locked. Not SQLite's
    other OperationalErrors ("no such table", a syntax error): those are bugs, and stay 500s."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        return sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith("08")
    sqlite_code = getattr(exc.orig, "sqlite_errorcode", None)
    if sqlite_code is not None:
        return sqlite_code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return isinstance(exc, OperationalError)  # e.g. psycopg's "server closed the connection unexpectedly"
