"""Gridcase: offline-first case management for grid-based community safety work."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, request, send_from_directory
from werkzeug.routing import PathConverter

from app.config import Config
from app.database import normalise_database_url, reset_begin_mode, set_begin_mode
from app.errors import check_request_head, refuse_nul_input
from app.extensions import api, db, jwt, limiter, migrate
from app.ops import ratelimit_store  # registers the gridcase+db:// rate-limit storage

ROOT = Path(__file__).resolve().parent.parent
PWA_DIR = ROOT / "static" / "pwa"
# Endpoints that begin reading and open their own write transaction (see app/sync/services.py).
LATE_WRITERS = {"sync.push"}
# Endpoints that read the request stream themselves: the NUL check before each request leaves their body alone.
STREAMED_BODIES = LATE_WRITERS | {"media.put_photo", "media.post_photo"}


class ConfigError(RuntimeError):
    pass


class PwaPathConverter(PathConverter):
    """Any path but the API's, so that a wrong method on an API route stays a 405, not a PWA 404."""

    regex = r"(?!api/|open311/)[^/].*?"


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: config, then extensions, blueprints, error handlers, commands (in that order)."""
    app = Flask(__name__, instance_relative_config=True, static_folder=None)
    app.config.from_object(Config)
    app.config.from_prefixed_env("GRIDCASE")
    if test_config:
        app.config.update(test_config)
    _resolve_config(app)
    app.json.ensure_ascii = False  # Chinese stays readable (and smaller) on the wire
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    register_hooks(app)
    register_request_hooks(app)
    register_operations(app)
    return app


def register_hooks(app: Flask) -> None:
    """The features' hooks into one another (app/cases/hooks.py), wired here rather than on import."""
    from app.cases import hooks as case_hooks
    from app.stats import points, rollup

    case_hooks.register(app)
    points.register(app)
    rollup.register()  # the figures' triggers come with db.create_all's tables


def register_operations(app: Flask) -> None:
    """Health, request ids and JSON logs, metrics, security headers."""
    from app.ops import health, logs, metrics, security

    logs.register(app)
    metrics.register(app)
    app.register_blueprint(health.blp)
    security.register(app)


def _resolve_config(app: Flask) -> None:
    cfg = app.config
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not cfg["DATABASE_URL"]:
        cfg["DATABASE_URL"] = "sqlite:///" + os.path.join(app.instance_path, "gridcase.sqlite3")
    cfg["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(cfg["DATABASE_URL"])
    engine_options = dict(cfg.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        engine_options.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
    else:
        engine_options.setdefault("pool_pre_ping", True)
        engine_options.setdefault("pool_size", 10)
        engine_options.setdefault("max_overflow", 10)
    cfg["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options
    if not cfg["MEDIA_DIR"]:
        cfg["MEDIA_DIR"] = os.path.join(app.instance_path, "media")

    relaxed = app.debug or cfg.get("TESTING")
    for key in ("SECRET_KEY", "JWT_SECRET_KEY"):
        if not cfg.get(key):
            if not relaxed:
                raise ConfigError(f"GRIDCASE_{key} must be set outside debug and testing")
            cfg[key] = "dev-only-" + key.lower() + "-not-for-production-0123456789"
    cfg.update(Config.jwt_settings(cfg))
    from app.cases.clock import OfficeHours

    try:  # a wrong timetable would silently move every deadline: refuse to start instead
        OfficeHours.parse(str(cfg["OFFICE_HOURS"]), str(cfg.get("OFFICE_HOURS_SEASONS") or ""))
    except ValueError as exc:
        raise ConfigError(f"GRIDCASE_OFFICE_HOURS / GRIDCASE_OFFICE_HOURS_SEASONS: {exc}") from exc
    ratelimit_store.configure(cfg)
    from app.ops.metrics import allowed_networks

    try:
        cfg["METRICS_NETWORKS"] = allowed_networks(str(cfg.get("METRICS_ALLOW") or ""))
    except ValueError as exc:
        raise ConfigError(f"GRIDCASE_METRICS_ALLOW: {exc}") from exc


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), compare_type=True, render_as_batch=True)
    jwt.init_app(app)
    # The one Limiter merges each app's storage options into what earlier apps gave it (several apps live in
    # one process in the tests): start from this app's own.
    limiter._storage_options.clear()
    if isinstance(getattr(limiter, "_storage", None), ratelimit_store.DatabaseStorage):
        limiter._storage.engine.dispose()  # replaced below: close its pooled connections now, not at GC
    limiter.init_app(app)
    api.init_app(app, spec_kwargs={"components": {"securitySchemes": {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"bearerAuth": []}]})
    from app import models  # noqa: F401  (every table, for Alembic)
    from app.cases import defaults

    defaults.register(db.metadata)  # create_all then holds what the first db upgrade adds
    from app.auth import tokens  # noqa: F401  (registers the JWT loaders)


def register_blueprints(app: Flask) -> None:
    from app.admin.people_routes import blp as admin_people_blp
    from app.admin.routes import blp as admin_blp
    from app.admin.rules_routes import blp as admin_rules_blp
    from app.auth.routes import blp as auth_blp
    from app.cases.routes import blp as cases_blp
    from app.devices.routes import blp as devices_blp
    from app.media.routes import blp as media_blp
    from app.open311.routes import blp as open311_blp
    from app.regions.routes import blp as regions_blp
    from app.stats.routes import blp as stats_blp  # also wires the points transition hook
    from app.sync.routes import blp as sync_blp

    for blp in (auth_blp, devices_blp, regions_blp, cases_blp, sync_blp, media_blp, admin_blp,
                admin_rules_blp, admin_people_blp):
        api.register_blueprint(blp, url_prefix="/api/v1")
    from app.media.tus import blp as tus_blp

    api.register_blueprint(tus_blp, url_prefix="/api/v1")  # tus speaks headers: documented as such
    api.register_blueprint(stats_blp, url_prefix="/api/v1")
    api.register_blueprint(open311_blp, url_prefix="/open311/v2")

    @app.get("/")
    def pwa_index():
        return send_from_directory(PWA_DIR, "index.html")

    app.url_map.converters["pwapath"] = PwaPathConverter

    @app.get("/<pwapath:filename>")
    def pwa_file(filename: str):
        return send_from_directory(PWA_DIR, filename)


def register_error_handlers(app: Flask) -> None:
    from app.errors import register_error_handlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from app.backup.commands import backup_cli
    from app.cases.commands import calendar_cli, cases_cli
    from app.demo.commands import demo_cli
    from app.regions.commands import regions_cli
    from app.stats.commands import stats_cli
    from app.users.commands import users_cli

    for group in (regions_cli, users_cli, demo_cli, cases_cli, calendar_cli, backup_cli, stats_cli):
        app.cli.add_command(group)


def register_request_hooks(app: Flask) -> None:
    @app.before_request
    def _head_limits():
        cfg = app.config
        check_request_head(request.environ, request.headers, max_url=int(cfg["MAX_URL_BYTES"]),
                           max_header_bytes=int(cfg["MAX_HEADER_BYTES"]), max_fields=int(cfg["MAX_HEADER_FIELDS"]))

    @app.before_request
    def _begin_mode():
        # GETs never write: let SQLite run them beside the writer instead of queueing for the lock. The sync
        # push reads and validates first, then takes the write lock itself for its batch.
        mode = "DEFERRED" if request.method in ("GET", "HEAD", "OPTIONS") or request.endpoint in LATE_WRITERS \
            else "IMMEDIATE"
        request.environ["gridcase.begin_token"] = set_begin_mode(mode)
        # NUL in a path, query or body: 404/422 here, not a failed PostgreSQL query. The sync push reads its
        # own stream and refuses such ops one by one (app.sync.services.prepare).
        endpoint = request.endpoint or ""
        refuse_nul_input(skip_body=endpoint in STREAMED_BODIES or endpoint.startswith("tus."))

    @app.teardown_request
    def _reset_begin_mode(exc):
        token = request.environ.pop("gridcase.begin_token", None)
        if token is not None:
            try:
                reset_begin_mode(token)
            except ValueError:  # created in another context (streamed responses)
                pass
