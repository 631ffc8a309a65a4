"""The migrations build the schema the models describe, on SQLite and on PostgreSQL, and come apart again."""

from __future__ import annotations

from datetime import date

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.extensions import db


@pytest.fixture
def empty_app(empty_database_url, tmp_path):
    from app import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": empty_database_url, "MEDIA_DIR": str(tmp_path / "media")})
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def schema_diff(app) -> list:
    with app.app_context(), db.engine.connect() as connection:
        def for_this_engine(obj, name, type_, reflected, compare_to):
            """Objects declared for one dialect only (``ddl_if``: PostgreSQL's GIN indexes) are compared there only."""
            only = getattr(obj, "_ddl_if", None)
            return only is None or only.dialect in (None, connection.dialect.name)

        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True,
                                                               "include_object": for_this_engine})
        return compare_metadata(context, db.metadata)


def triggers(app) -> set[str]:
    with app.app_context(), db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        return {row[0] for row in connection.exec_driver_sql(sql)}


def tables(app) -> set[str]:
    with app.app_context():
        return set(inspect(db.engine).get_table_names())


def test_upgrade_head_matches_the_models(empty_app):
    assert tables(empty_app) == set()
    result = empty_app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert set(db.metadata.tables) <= tables(empty_app)
    assert "alembic_version" in tables(empty_app)
    assert schema_diff(empty_app) == []
    # The figures' roll-up is kept by triggers, which compare_metadata does not see: the migrated database
    # has every one of them.
    from app.stats import rollup

    assert {name for name, _ in rollup.trigger_names()} <= triggers(empty_app)


def test_downgrade_to_base_and_up_again(empty_app):
    import flask_migrate

    with empty_app.app_context():
        flask_migrate.upgrade()
        flask_migrate.downgrade(revision="base")
    assert tables(empty_app) - {"alembic_version"} == set()
    with empty_app.app_context():
        flask_migrate.upgrade(revision="head")
    assert schema_diff(empty_app) == []


def test_migrated_schema_holds_the_demo_city(empty_app):
    """Not only the same shape: the constraints work (foreign keys, unique usernames) on the migrated schema."""
    import flask_migrate
    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError

    from app.demo.services import seed_demo
    from app.regions.models import Region
    from app.users.models import User

    with empty_app.app_context():
        flask_migrate.upgrade()
        seed_demo()
        assert db.session.scalar(select(func.count()).select_from(Region)) == 341
        db.session.add(User(username="admin", role="admin", region_code="330381", password_hash="x"))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        db.session.add(User(username="ghost", role="admin", region_code="no-such-region", password_hash="x"))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_a_fresh_upgrade_is_a_working_system(empty_database_url, tmp_path, request):
    """``db upgrade`` on an empty database, then a region file and one grid worker from the command line, and
    nothing else (no demo): the worker files a report through the sync and it is timed. Upgrading again, or
    running the defaults' migration again, duplicates nothing and undoes no admin's edit."""
    import json

    import flask_migrate
    # tests/conftest.py by its path: the bare name "conftest" may be another directory's in a whole run
    root = next(p for p in request.config.pluginmanager.get_plugins()
                if getattr(p, "__file__", None) == __file__.replace("test_migrations.py", "conftest.py"))
    Auth, base_config = root.Auth, root.base_config
    from factories import TEST_PASSWORD
    from helpers import Phone, report_op
    from sqlalchemy import func, select

    from app import create_app
    from app.cases.models import CalendarDay, Case, Category, SlaRule
    from app.demo.services import demo_feature_collection

    app = create_app(base_config(tmp_path, empty_database_url))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    regions = tmp_path / "county.geojson"
    regions.write_text(json.dumps(demo_feature_collection(), ensure_ascii=False), encoding="utf-8")
    assert runner.invoke(args=["regions", "import", str(regions)]).exit_code == 0
    made = runner.invoke(args=["users", "create", "zhangsan", "--role", "grid_worker", "--region", "33038100100101",
                               "--name", "张三", "--password-stdin"], input=TEST_PASSWORD + "\n")
    assert made.exit_code == 0, made.output

    def counts():
        with app.app_context():
            return tuple(db.session.scalar(select(func.count()).select_from(m)) for m in (Category, SlaRule, CalendarDay))

    first = counts()
    assert first[0] == 12 and first[1] == 6 and first[2] > 700  # every year 2004-2026 the package knows
    client = app.test_client()
    worker = Phone(client, Auth(client), "zhangsan")
    categories = client.get("/api/v1/categories", headers=worker.headers).get_json()
    assert "fire_hazard" in {c["code"] for c in categories}
    for risk, clock in (("red", "natural"), ("yellow", "working"), ("blue", "working")):
        result = worker.one(report_op(risk=risk, category="fire_hazard"))
        assert result["status"] == "applied", result
        with app.app_context():
            case = db.session.get(Case, result["case_id"])
            assert case.stage == "accept" and case.stage_clock == clock and case.due_at is not None
    calendar = client.get("/api/v1/calendar?from=2026-10-01&to=2026-10-10", headers=worker.headers).get_json()
    assert {d["date"] for d in calendar["days"] if d["kind"] == "workday"} == {"2026-10-10"}

    # an admin renames a category, deactivates another, re-times a rule, moves a day
    with app.app_context():
        db.session.get(Category, "fire_hazard").name_zh = "消防安全隐患"
        db.session.get(Category, "other").active = False
        rule = db.session.scalars(select(SlaRule).where(SlaRule.stage == "accept", SlaRule.risk_level == "yellow",
                                                        SlaRule.category.is_(None))).one()
        rule.limit_minutes, rule.clock = 240, "natural"
        db.session.get(CalendarDay, date(2026, 10, 7)).workday = True
        db.session.commit()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0  # nothing to run
    with app.app_context():  # and the defaults' migration itself run again
        flask_migrate.downgrade(revision="-1")
        flask_migrate.upgrade()
    assert counts() == first
    with app.app_context():
        assert db.session.get(Category, "fire_hazard").name_zh == "消防安全隐患"
        assert db.session.get(Category, "other").active is False
        rule = db.session.scalars(select(SlaRule).where(SlaRule.stage == "accept", SlaRule.risk_level == "yellow",
                                                        SlaRule.category.is_(None))).one()
        assert (rule.limit_minutes, rule.clock) == (240, "natural")
        assert db.session.get(CalendarDay, date(2026, 10, 7)).workday is True
        db.session.remove()
        db.engine.dispose()
