"""Fixtures shared by every test: a real database per test (SQLite file or PostgreSQL database), the demo
city and its users, and helpers to log in.

``pytest`` runs on SQLite; ``pytest --db=postgresql`` runs the same tests on a real PostgreSQL server that
the suite starts itself (tests/pgserver.py). Each test gets a fresh copy of a template database made
once per session (a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL).
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "sync"))  # helpers.py: building ops the way the PWA does

from factories import TEST_PASSWORD, TEST_USERS, make_users  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
FIXTURES = Path(__file__).parent / "fixtures"


def pytest_addoption(parser):
    parser.addoption("--db", choices=["sqlite", "postgresql"],
                     default=os.environ.get("GRIDCASE_TEST_DB", "sqlite"),
                     help="database engine the tests run on")


def base_config(tmp_path: Path, url: str) -> dict:
    return {
        "TESTING": True,
        "DATABASE_URL": url,
        "SECRET_KEY": "test-secret-key-0123456789abcdef0123456789",
        "JWT_SECRET_KEY": "test-jwt-secret-key-0123456789abcdef0123456789",
        "MEDIA_DIR": str(tmp_path / "media"),
        # Cheap hashes keep the suite fast; the production defaults are tested in test_passwords.
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_KIB": 1024,
    }


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgresql`` need a database that several nodes share: they run in the
    ``--db=postgresql`` pass and are deselected (not skipped) in the SQLite one."""
    if config.getoption("--db") == "postgresql":
        return
    keep = [item for item in items if item.get_closest_marker("postgresql") is None]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep


# ---------------------------------------------------------------------------------------------- engines


@pytest.fixture(scope="session")
def db_kind(request) -> str:
    return request.config.getoption("--db")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """A real PostgreSQL server for this session (started on first use)."""
    from pgserver import start_postgres

    try:
        server = start_postgres(tmp_path_factory.mktemp("pg"))
    except (RuntimeError, OSError) as exc:
        if IN_CI:
            raise
        pytest.skip(f"PostgreSQL is not available here: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server for this session (started on first use; tests/redisserver.py)."""
    from redisserver import start_redis

    try:
        server = start_redis(tmp_path_factory.mktemp("redis"))
    except (RuntimeError, OSError) as exc:
        if IN_CI:
            raise
        pytest.skip(f"redis-server is not available here: {exc}")
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """The session's Redis, emptied for this test."""
    redis_server.flushall()
    return redis_server.url


def _build_template(url: str, tmp_path: Path) -> None:
    from app import create_app
    from app.demo.services import seed_demo
    from app.extensions import db

    app = create_app(base_config(tmp_path, url))
    with app.app_context():
        db.create_all()
        seed_demo()
        make_users()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    _build_template(f"sqlite:///{path}", path.parent)
    return path


@pytest.fixture(scope="session")
def pg_template(pg_server, tmp_path_factory) -> str:
    pg_server.create_database("gridcase_template")
    _build_template(pg_server.url_for("gridcase_template"), tmp_path_factory.mktemp("pgtemplate"))
    return "gridcase_template"


_counter = itertools.count()


@pytest.fixture
def database_url(request, db_kind, tmp_path) -> str:
    """A fresh database holding the demo city and the test users, on the engine under test."""
    if db_kind == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        target = tmp_path / "gridcase.sqlite3"
        shutil.copyfile(template, target)
        wal = Path(f"{template}-wal")
        if wal.exists():  # closing the last connection normally folds the WAL in; just in case
            shutil.copyfile(wal, f"{target}-wal")
        yield f"sqlite:///{target}"
        return
    server = request.getfixturevalue("pg_server")
    template = request.getfixturevalue("pg_template")
    name = f"t{os.getpid()}_{next(_counter)}"
    server._execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield server.url_for(name)
    server.drop_database(name)


@pytest.fixture
def empty_database_url(request, db_kind, tmp_path) -> str:
    """A database with nothing in it (not even tables), on the engine under test."""
    if db_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    server = request.getfixturevalue("pg_server")
    name = f"e{os.getpid()}_{next(_counter)}"
    yield server.create_database(name)
    server.drop_database(name)


# ---------------------------------------------------------------------------------------------- app


def _make_app(url: str, tmp_path: Path, extra: dict | None = None):
    from app import create_app
    from app.extensions import limiter
    from app.regions.services import invalidate_index

    invalidate_index()
    app = create_app({**base_config(tmp_path, url), **(extra or {})})
    limiter.reset()
    return app


@pytest.fixture
def app_config() -> dict:
    """Override in a test module to change the app's configuration."""
    return {}


@pytest.fixture
def app(database_url, tmp_path, app_config):
    from app.extensions import db

    app = _make_app(database_url, tmp_path, app_config)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield app


# ---------------------------------------------------------------------------------------------- auth


class Auth:
    """Logs users in through the API, the way a phone does."""

    def __init__(self, client):
        self.client = client
        self._n = itertools.count()

    def login(self, username: str, password: str | None = None, device_id: str | None = None) -> dict:
        device_id = device_id or f"test-device-{username}-{next(self._n)}"
        response = self.client.post("/api/v1/auth/login", json={
            "username": username, "password": password or TEST_USERS.get(username, (None, None, TEST_PASSWORD))[2],
            "device_id": device_id})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        body["device_id"] = device_id
        return body

    def headers(self, username: str, **kwargs) -> dict:
        return {"Authorization": f"Bearer {self.login(username, **kwargs)['access_token']}"}


@pytest.fixture
def auth(client) -> Auth:
    return Auth(client)
