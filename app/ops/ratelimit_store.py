"""Rate-limit counters that every gunicorn worker and every node sees: the ``gridcase+db://`` storage.

flask-limiter counts through a storage of the ``limits`` library, picked by ``RATELIMIT_STORAGE_URI``;
``memory://`` counts in each process on its own (ten wrong passwords a minute became forty with four
workers). This storage keeps fixed-window counters in the application's own database, table
``rate_limit_counters``: one row per key, bumped by one atomic ``INSERT … ON CONFLICT DO UPDATE …
RETURNING`` (SQLite and PostgreSQL alike: the row is locked while it is bumped, so concurrent hits from
any worker or node are all counted). Windows are timed by the database's clock, which every node shares.

Each call runs in a short transaction of its own, on a small engine of its own: a counter is committed
whatever becomes of the request (a failed login rolls its session back, its count stays). Counters are
worth less than cases, so their commits do not wait for the disk (``synchronous_commit = off`` on
PostgreSQL, ``synchronous = NORMAL`` on SQLite): a crash forgets at most the last moment's counts. Expired
rows are deleted now and then by whichever process passes by, a bounded batch through an index.

``limits`` registers a storage by its ``STORAGE_SCHEME`` when the class is defined; ``create_app`` imports
this module and passes the database URL as a storage option. Redis (``redis://…``) is the other shared
choice, for nodes that would rather keep the counts off the database.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from contextlib import nullcontext

from limits.errors import ConfigurationError
from limits.storage import Storage
from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    case,
    create_engine,
    delete,
    event,
    extract,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from app.database import reset_begin_mode, set_begin_mode, sqlite_writer_of_this_thread
from app.extensions import db

log = logging.getLogger(__name__)

SCHEME = "gridcase+db"
KEY_MAX = 255  # flask-limiter's keys are far shorter (prefix, key, endpoint, limit); longer ones are hashed
CLEANUP_EVERY_S = 60.0  # each process deletes expired rows at most this often
CLEANUP_BATCH = 1000
CLEANUP_BATCHES = 10  # per pass at most: the pass stays short, the next one takes the rest

counters = Table(
    "rate_limit_counters", db.metadata,
    Column("key", String(KEY_MAX), primary_key=True),
    Column("hits", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),  # the window's end, seconds since the epoch (database clock)
    Index("ix_rate_limit_counters_expires_at", "expires_at"),
)


def _db_now(dialect_name: str):
    """The database's clock in seconds since the epoch: one clock for every node."""
    if dialect_name == "sqlite":
        return (func.julianday("now") - 2440587.5) * 86400.0
    return extract("epoch", func.now())  # the transaction's start: one value within the statement


def _storage_key(key: str) -> str:
    if len(key) <= KEY_MAX:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class DatabaseStorage(Storage):
    """Fixed-window counters in the ``rate_limit_counters`` table (``gridcase+db://``)."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, *, database_url: str = "",
                 engine_options: dict | None = None, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        if not database_url:
            raise ConfigurationError(f"{SCHEME}:// needs the database_url storage option")
        self.engine = create_engine(database_url, **(engine_options or _engine_options(database_url)))
        event.listen(self.engine, "connect", _relaxed_durability)
        self.dialect = self.engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(f"{SCHEME}:// works on SQLite and PostgreSQL, not {self.dialect}")
        self._now = _db_now(self.dialect)
        self._insert = (sqlite.insert if self.dialect == "sqlite" else postgresql.insert)(counters)
        self._cleanup_lock = threading.Lock()
        self._next_cleanup = time.monotonic() + CLEANUP_EVERY_S

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def _write(self):
        """A write transaction; on SQLite it takes the write lock (and the workers' turn) when it begins. When
        this thread already holds that lock on the same file (code that reads through a session in one app
        context and then calls a view, as tests do), the counter joins that transaction rather than wait
        for it for ever."""
        if self.dialect == "sqlite":
            held = sqlite_writer_of_this_thread()
            if held is not None and held.engine.url.database == self.engine.url.database:
                return nullcontext(held)
        return _Transaction(self.engine, "IMMEDIATE")

    def _read(self):
        return _Transaction(self.engine, "DEFERRED")

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to the key's count; a missing or expired window starts again at ``amount``."""
        fresh = self._insert.values(key=_storage_key(key), hits=amount, expires_at=self._now + expiry)
        expired = counters.c.expires_at <= self._now
        statement = fresh.on_conflict_do_update(
            index_elements=[counters.c.key],
            set_={"hits": case((expired, fresh.excluded.hits), else_=counters.c.hits + fresh.excluded.hits),
                  "expires_at": case((expired, fresh.excluded.expires_at), else_=counters.c.expires_at)},
        ).returning(counters.c.hits)
        with self._write() as conn:
            hits = conn.execute(statement).scalar_one()
        self._maybe_clean_up()
        return int(hits)

    # get and get_expiry serve the X-RateLimit-* headers, which flask-limiter adds after the response is
    # made: when the database is away they say "nothing counted" rather than turn the response (a 503 that
    # says so, most likely) into a 500. The counting itself (incr) raises, and the request gets its 503.

    def get(self, key: str) -> int:
        hits = self._read_live(counters.c.hits, key)
        return int(hits or 0)

    def get_expiry(self, key: str) -> float:
        expires_at = self._read_live(counters.c.expires_at, key)
        return float(expires_at) if expires_at is not None else time.time()

    def _read_live(self, column, key: str):
        """One column of the key's live counter, or None (none, or the database away: logged)."""
        try:
            with self._read() as conn:
                return conn.execute(select(column).where(
                    counters.c.key == _storage_key(key), counters.c.expires_at > self._now)).scalar()
        except SQLAlchemyError as exc:
            log.warning("rate-limit counter not read: %s", exc)
            return None

    def check(self) -> bool:
        try:
            with self._read() as conn:
                conn.execute(select(1))
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with self._write() as conn:
            return conn.execute(delete(counters)).rowcount

    def clear(self, key: str) -> None:
        with self._write() as conn:
            conn.execute(delete(counters).where(counters.c.key == _storage_key(key)))

    def clean_up(self) -> int:
        """Delete expired rows, a bounded batch at a time; returns how many went."""
        removed = 0
        for _ in range(CLEANUP_BATCHES):
            expired = counters.c.expires_at < self._now
            batch = select(counters.c.key).where(expired).limit(CLEANUP_BATCH).scalar_subquery()
            # The outer condition is checked again on the row itself: a window that restarted meanwhile stays.
            with self._write() as conn:
                n = conn.execute(delete(counters).where(expired, counters.c.key.in_(batch))).rowcount
            removed += n
            if n < CLEANUP_BATCH:
                break
        return removed

    def _maybe_clean_up(self) -> None:
        now = time.monotonic()
        if now < self._next_cleanup or not self._cleanup_lock.acquire(blocking=False):
            return
        try:
            self._next_cleanup = now + CLEANUP_EVERY_S
            self.clean_up()
        except SQLAlchemyError:  # the counts stand; the next pass tries again
            pass
        finally:
            self._cleanup_lock.release()


class _Transaction:
    """``engine.begin()`` with SQLite's BEGIN mode chosen here, not by the request around it."""

    def __init__(self, engine, mode: str):
        self.engine, self.mode = engine, mode

    def __enter__(self):
        self.token = set_begin_mode(self.mode)
        try:
            self.cm = self.engine.begin()
            return self.cm.__enter__()
        except BaseException:
            reset_begin_mode(self.token)
            raise

    def __exit__(self, *exc):
        try:
            return self.cm.__exit__(*exc)
        finally:
            reset_begin_mode(self.token)


def _engine_options(database_url: str) -> dict:
    if database_url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    # A counter holds its connection for a millisecond: a few per process are plenty.
    return {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 8}


def _relaxed_durability(dbapi_connection, connection_record):
    module = type(dbapi_connection).__module__.split(".")[0]
    cursor = dbapi_connection.cursor()
    try:
        if module in ("sqlite3", "pysqlite2"):
            cursor.execute("PRAGMA synchronous = NORMAL")
        else:
            cursor.execute("SET synchronous_commit TO off")
    finally:
        cursor.close()
    if module not in ("sqlite3", "pysqlite2"):
        dbapi_connection.commit()  # a SET in a transaction that is rolled back would be undone


REDIS_TIMEOUT_S = 2.0  # a Redis that stopped answering costs a request two seconds and a 503, never a hang


def configure(config) -> None:
    """The storage options flask-limiter passes on: ``gridcase+db://`` gets the app's database URL; Redis
    gets timeouts, and its errors come wrapped (``StorageError``: a 503, the store being away)."""
    uri = config.get("RATELIMIT_STORAGE_URI") or f"{SCHEME}://"
    config["RATELIMIT_STORAGE_URI"] = uri
    options = dict(config.get("RATELIMIT_STORAGE_OPTIONS") or {})
    if uri.startswith(SCHEME + "://"):
        options.setdefault("database_url", config["SQLALCHEMY_DATABASE_URI"])
    elif uri.split("://", 1)[0] in ("redis", "rediss", "redis+unix"):
        options.setdefault("socket_connect_timeout", REDIS_TIMEOUT_S)
        options.setdefault("socket_timeout", REDIS_TIMEOUT_S)
        options.setdefault("wrap_exceptions", True)
    config["RATELIMIT_STORAGE_OPTIONS"] = options
