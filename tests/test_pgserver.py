"""Smoke test for the throwaway PostgreSQL helper in tests/pgserver.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pgserver import port_is_open, start_postgres  # noqa: E402


def _conn(pg, dbname: str = "gridcase_test"):
    return psycopg.connect(pg.conninfo(dbname), connect_timeout=10, autocommit=True)


@pytest.mark.slow
def test_start_restart_databases_stop(tmp_path):
    pg = start_postgres(tmp_path)
    try:
        assert pg.url == f"postgresql+psycopg://gridcase@127.0.0.1:{pg.port}/gridcase_test"
        assert pg.data_dir.is_dir()
        assert port_is_open(pg.port)

        with _conn(pg) as conn:
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('fsync', 'synchronous_commit', 'max_connections', 'listen_addresses', "
                "'server_encoding')"
            ).fetchall())
            assert settings == {
                "fsync": "on",
                "synchronous_commit": "on",
                "max_connections": "200",
                "listen_addresses": "127.0.0.1",
                "server_encoding": "UTF8",
            }
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, label text)")
            conn.execute("INSERT INTO t VALUES (1, %s)", ("网格",))

        old_port, old_data = pg.port, pg.data_dir
        pg.restart()
        assert (pg.port, pg.data_dir) == (old_port, old_data)
        with _conn(pg) as conn:
            assert conn.execute("SELECT id, label FROM t").fetchall() == [(1, "网格")]

        # A crash-style restart keeps committed data too (fsync is on).
        with _conn(pg) as conn:
            conn.execute("INSERT INTO t VALUES (2, 'x')")
        pg.restart(mode="immediate")
        with _conn(pg) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)

        url = pg.create_database("extra_db")
        assert url == f"postgresql+psycopg://gridcase@127.0.0.1:{pg.port}/extra_db"
        with _conn(pg, "extra_db") as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("extra_db",)
        idle = _conn(pg, "extra_db")  # drop_database must cope with open connections
        pg.drop_database("extra_db")
        idle.close()
        with _conn(pg, "postgres") as conn:
            assert conn.execute(
                "SELECT count(*) FROM pg_database WHERE datname = 'extra_db'"
            ).fetchone() == (0,)
        with pytest.raises(ValueError):
            pg.create_database('bad"name')
    finally:
        pg.stop()

    assert not port_is_open(pg.port)
    assert not pg.data_dir.exists()
    pg.stop()  # idempotent
    assert not os.path.exists(pg.run_dir)
