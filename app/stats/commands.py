"""``flask stats rebuild`` and ``flask stats fold``: repairing and compacting the figures' roll-up."""

from __future__ import annotations

import time

import click
from flask.cli import AppGroup

from app.extensions import db
from app.stats import rollup

stats_cli = AppGroup("stats", help="The figures' roll-up (GET /api/v1/stats).")


@stats_cli.command("rebuild")
def rebuild_command():
    """Recompute the roll-up from the cases and stages, and (re)install its triggers. For a database loaded
    in bulk without them, or one whose triggers were dropped; the figures are the same before and after on
    a healthy database. On PostgreSQL writes to the cases wait while it runs (about a minute per million
    cases); on SQLite it holds the write lock as long."""
    started = time.perf_counter()
    with db.engine.begin() as conn:
        rollup.install(conn)
        counts = rollup.rebuild(conn)
    click.echo(f"roll-up rebuilt in {time.perf_counter() - started:.1f} s: "
               + ", ".join(f"{name} {n:,} rows" for name, n in counts.items()))


@stats_cli.command("fold")
def fold_command():
    """Sum the deltas the triggers appended, key by key (the figures do it themselves when enough have piled
    up; cron may run this at a quiet hour instead)."""
    with db.engine.begin() as conn:
        removed = rollup.fold(conn)
    click.echo(f"folded: {removed:,} rows summed away")
