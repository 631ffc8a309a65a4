"""Database plumbing shared by every feature: UTC timestamps, engine set-up for SQLite and PostgreSQL.

SQLite is configured for a server with several worker processes: WAL (readers never block the writer),
``synchronous=FULL`` (an acknowledged op survives power loss), a busy timeout, foreign keys, and writes
that take the write lock when they begin (``BEGIN IMMEDIATE``), so a transaction never fails half-way
with "database is locked" when it upgrades from reading to writing. Safe (read-only) requests begin
deferred so that they run beside the writer.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from datetime import datetime, timezone

from sqlalchemy import DateTime, event
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator

SQLITE_BUSY_TIMEOUT_MS = 30_000

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
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_on_begin(conn):
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"BEGIN {_begin_mode.get()}")


def normalise_database_url(url: str) -> str:
    """``postgresql://`` (what operators write) selects psycopg 3, not psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
