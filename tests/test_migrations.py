"""The migrations build the schema the models describe, on SQLite and on PostgreSQL, and come apart again."""

from __future__ import annotations

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
