"""The app factory, its configuration from the environment, the SQLite engine set-up, the served documents and
the operator commands (``demo seed``, ``users create`` / ``disable``)."""

from __future__ import annotations

import threading
import time

import pytest
from factories import TOWN_A
from sqlalchemy import func, select, text

from app import ConfigError, create_app
from app.extensions import db

ENV_KEYS = ("GRIDCASE_SECRET_KEY", "GRIDCASE_JWT_SECRET_KEY", "GRIDCASE_DATABASE_URL", "GRIDCASE_MEDIA_DIR",
            "GRIDCASE_SYNC_MAX_OPS", "GRIDCASE_TESTING", "GRIDCASE_DEBUG", "FLASK_DEBUG")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GRIDCASE_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    monkeypatch.setenv("GRIDCASE_MEDIA_DIR", str(tmp_path / "media"))
    return monkeypatch


def dispose(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize("missing", ["GRIDCASE_SECRET_KEY", "GRIDCASE_JWT_SECRET_KEY"])
def test_refuses_to_start_without_secrets_in_production(clean_env, missing):
    clean_env.setenv("GRIDCASE_SECRET_KEY", "s" * 40)
    clean_env.setenv("GRIDCASE_JWT_SECRET_KEY", "j" * 40)
    clean_env.delenv(missing)
    with pytest.raises(ConfigError, match=missing):
        create_app()


def test_starts_with_secrets_from_the_environment(clean_env):
    clean_env.setenv("GRIDCASE_SECRET_KEY", "s" * 40)
    clean_env.setenv("GRIDCASE_JWT_SECRET_KEY", "j" * 40)
    app = create_app()
    assert app.config["SECRET_KEY"] == "s" * 40
    assert app.config["JWT_SECRET_KEY"] == "j" * 40
    assert not app.testing and not app.debug


def test_testing_gets_throwaway_secrets(clean_env):
    app = create_app({"TESTING": True})
    assert app.config["SECRET_KEY"].startswith("dev-only-")
    assert app.config["JWT_SECRET_KEY"].startswith("dev-only-")
    assert app.config["SECRET_KEY"] != app.config["JWT_SECRET_KEY"]


def test_reads_gridcase_environment_variables(clean_env, tmp_path):
    clean_env.setenv("GRIDCASE_SYNC_MAX_OPS", "123")
    app = create_app({"TESTING": True})
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'env.sqlite3'}"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'env.sqlite3'}"
    assert app.config["MEDIA_DIR"] == str(tmp_path / "media")
    assert app.config["SYNC_MAX_OPS"] == 123
    with app.app_context():
        assert db.engine.url.database == str(tmp_path / "env.sqlite3")
    dispose(app)


def test_default_database_is_a_file_in_the_instance_folder(clean_env):
    clean_env.delenv("GRIDCASE_DATABASE_URL")
    clean_env.delenv("GRIDCASE_MEDIA_DIR")
    app = create_app({"TESTING": True})
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith("gridcase.sqlite3")
    assert app.config["MEDIA_DIR"].startswith(app.instance_path)


@pytest.mark.parametrize("url", ["postgresql://gc:pw@db.example:5433/gridcase", "postgres://gc:pw@db.example:5433/gridcase"])
def test_postgresql_url_selects_psycopg3(clean_env, url):
    clean_env.setenv("GRIDCASE_DATABASE_URL", url)
    app = create_app({"TESTING": True})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://gc:pw@db.example:5433/gridcase"
    with app.app_context():  # creating the engine connects to nothing
        assert db.engine.dialect.name == "postgresql"
        assert db.engine.dialect.driver == "psycopg"
        assert db.engine.url.port == 5433


# ---------------------------------------------------------------------------------------------- SQLite


@pytest.fixture
def sqlite_app(tmp_path):
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'file.sqlite3'}",
                      "MEDIA_DIR": str(tmp_path / "media")})
    with app.app_context():
        db.session.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        db.session.execute(text("INSERT INTO counter (id, n) VALUES (1, 0)"))
        db.session.commit()
    yield app
    dispose(app)


def test_sqlite_pragmas(sqlite_app):
    with sqlite_app.app_context():
        pragma = lambda name: db.session.execute(text(f"PRAGMA {name}")).scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 2  # FULL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 30000
        # statement journals in memory: a case row's INSERT (its ~30 index pages and the roll-up triggers)
        # spilled its journal to a temporary file on every row otherwise
        assert pragma("temp_store") == 2  # MEMORY
        assert pragma("wal_autocheckpoint") == 8000  # writers checkpoint after their turn; this is the backstop


def test_the_wsgi_entry_point_freezes_what_start_up_made(tmp_path):
    """``wsgi.py`` (what gunicorn loads) moves the objects made at start-up out of the garbage collector's
    reach, so that a worker's full collections stop walking them (they had stalled requests 67-79 ms)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "GRIDCASE_SECRET_KEY": "s" * 32, "GRIDCASE_JWT_SECRET_KEY": "j" * 32,
           "GRIDCASE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    env.pop("GRIDCASE_TESTING", None)
    out = subprocess.run([sys.executable, "-c", "import gc, wsgi; print(gc.get_freeze_count(), len(gc.get_objects()))"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    frozen, unfrozen = map(int, out.stdout.split()[-2:])
    assert frozen > 50_000 and unfrozen < frozen / 10


def _read_then_write(app, iterations: int, errors: list, barrier: threading.Barrier | None = None,
                     deferred: bool = False) -> None:
    from app.database import read_only_transactions

    try:
        with app.app_context():
            for _ in range(iterations):
                if deferred:
                    with read_only_transactions():
                        n = db.session.execute(text("SELECT n FROM counter WHERE id = 1")).scalar()
                else:
                    n = db.session.execute(text("SELECT n FROM counter WHERE id = 1")).scalar()
                if barrier is not None:
                    barrier.wait(timeout=10)
                time.sleep(0.002)
                db.session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})
                db.session.commit()
    except Exception as exc:  # noqa: BLE001  (collected for the assertion)
        errors.append(exc)
    finally:
        try:
            with app.app_context():
                db.session.remove()
        except Exception:  # noqa: BLE001
            pass


def test_writes_begin_immediate_so_read_then_write_never_fails(sqlite_app):
    errors: list = []
    threads = [threading.Thread(target=_read_then_write, args=(sqlite_app, 25, errors)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with sqlite_app.app_context():
        # no lost update either: each read-then-write ran alone
        assert db.session.execute(text("SELECT n FROM counter")).scalar() == 50


def test_deferred_read_then_write_would_fail(sqlite_app):
    """The control: the same transactions begun DEFERRED (as GET requests are) collide, which is why writes
    don't."""
    errors: list = []
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=_read_then_write, args=(sqlite_app, 1, errors, barrier, True))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(errors) == 1
    assert "database is locked" in str(errors[0])


def test_get_requests_begin_deferred_and_posts_immediate(app, client):
    from app.database import _begin_mode

    seen = {}

    @app.route("/api/v1/test-begin-mode", methods=["GET", "POST"])
    def begin_mode():
        from flask import request

        seen[request.method] = _begin_mode.get()
        return ""

    client.get("/api/v1/test-begin-mode")
    client.post("/api/v1/test-begin-mode")
    assert seen == {"GET": "DEFERRED", "POST": "IMMEDIATE"}


# ---------------------------------------------------------------------------------------------- served documents


def test_openapi_spec(client):
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    spec = r.get_json()
    assert spec["info"]["title"] == "Gridcase API"
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer",
                                                                  "bearerFormat": "JWT"}
    assert spec["security"] == [{"bearerAuth": []}]
    assert "post" in spec["paths"]["/api/v1/auth/login"]
    assert spec["paths"]["/api/v1/auth/login"]["post"]["security"] == []  # logging in needs no token
    for path in ("/api/v1/me", "/api/v1/regions/locate", "/api/v1/regions/{code}/geojson", "/api/v1/devices"):
        assert path in spec["paths"]


def test_swagger_ui(client):
    r = client.get("/api/docs")
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "swagger-ui" in html.lower()
    assert "openapi.json" in html
    assert "/vendor/swagger-ui/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
    assert client.get("/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_pwa_index(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    assert "<html" in r.get_data(as_text=True).lower()


# ---------------------------------------------------------------------------------------------- commands


def counts() -> dict:
    from app.regions.models import Region
    from app.users.models import User

    return {"regions": db.session.scalar(select(func.count()).select_from(Region)),
            "users": db.session.scalar(select(func.count()).select_from(User))}


def test_demo_seed_on_an_empty_database_twice(empty_database_url, tmp_path):
    app = create_app({"TESTING": True, "DATABASE_URL": empty_database_url, "MEDIA_DIR": str(tmp_path / "m"),
                      "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024})
    with app.app_context():
        db.create_all()
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "seed"])
    assert first.exit_code == 0, first.output
    for username, password in (("admin", "Gridcase-admin-2026"), ("reviewer", "Gridcase-review-2026"),
                               ("wanggeyuan", "Gridcase-grid-2026"), ("zhiyuanzhe", "Gridcase-volunteer-2026")):
        assert f"username={username}" in first.stdout
        assert password in first.stdout
    with app.app_context():
        after_first = counts()
    assert after_first == {"regions": 341, "users": 4}
    second = runner.invoke(args=["demo", "seed"])
    assert second.exit_code == 0, second.output
    assert second.stdout == first.stdout
    with app.app_context():
        assert counts() == after_first
    # the printed credentials work
    r = app.test_client().post("/api/v1/auth/login", json={"username": "wanggeyuan", "password": "Gridcase-grid-2026",
                                                           "device_id": "phone-seed-01"})
    assert r.status_code == 200
    dispose(app)


def test_demo_seed_on_the_seeded_database_changes_nothing(app_ctx, runner):
    before = counts()
    result = runner.invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    assert counts() == before


def test_users_create(runner, client, app_ctx):
    from app.users.models import User

    result = runner.invoke(args=["users", "create", "new_reviewer", "--role", "reviewer", "--region", TOWN_A,
                                 "--name", "新审核员", "--password-stdin"], input="Long-enough-pw\n")
    assert result.exit_code == 0, result.output
    assert "created new_reviewer (reviewer, 330381001)" in result.stdout
    user = db.session.scalar(select(User).where(User.username == "new_reviewer"))
    assert (user.role, user.region_code, user.display_name) == ("reviewer", TOWN_A, "新审核员")
    assert user.password_hash.startswith("$argon2id$")
    r = client.post("/api/v1/auth/login", json={"username": "new_reviewer", "password": "Long-enough-pw",
                                                 "device_id": "phone-new-01"})
    assert r.status_code == 200
    assert r.get_json()["user"]["region"] == TOWN_A


@pytest.mark.parametrize("args,password,message", [
    (["bad_role", "--role", "mayor", "--region", TOWN_A], "Long-enough-pw", "Invalid value for '--role'"),
    (["no_region", "--role", "reviewer", "--region", "999999"], "Long-enough-pw", "unknown region '999999'"),
    (["short_pw", "--role", "reviewer", "--region", TOWN_A], "short", "password: at least 8 characters"),
    (["wanggeyuan", "--role", "grid_worker", "--region", TOWN_A], "Long-enough-pw", "username_taken"),
    (["no_region_given", "--role", "reviewer"], "Long-enough-pw", "Missing option '--region'"),
])
def test_users_create_refuses(runner, app_ctx, args, password, message):
    before = counts()
    result = runner.invoke(args=["users", "create", *args, "--password-stdin"], input=password + "\n")
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    db.session.expire_all()
    assert counts() == before


def test_users_disable(runner, client, app_ctx):
    from app.users.models import User

    result = runner.invoke(args=["users", "disable", "worker_a2"])
    assert result.exit_code == 0, result.output
    assert "disabled worker_a2" in result.stdout
    assert db.session.scalar(select(User.disabled_at).where(User.username == "worker_a2")) is not None
    r = client.post("/api/v1/auth/login", json={"username": "worker_a2", "password": "Test-password-2026",
                                                 "device_id": "phone-disabled-1"})
    assert r.get_json()["code"] == "user_disabled"
    result = runner.invoke(args=["users", "disable", "nobody-at-all"])
    assert result.exit_code != 0
    assert "not_found" in result.output
