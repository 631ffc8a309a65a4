"""``flask demo …``"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.demo.cases import seed_cases
from app.demo.services import demo_feature_collection, seed_demo

demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("seed")
@click.option("--cases/--no-cases", default=True, show_default=True,
              help="Also create four weeks of cases in every state of the workflow, with photos.")
def seed(cases: bool):
    """Create a demo county-level city (瑞安市: streets, communities, grids, micro-grids) and one user of each
    role, then print their credentials; with --cases (the default) also a few more field workers and a
    month of cases for the queue, the map and the figures. Safe to run again."""
    credentials = seed_demo()
    click.echo("demo city 瑞安市 (330381) is ready. Users:")
    for role, c in credentials.items():
        click.echo(f"  {role:<12} username={c['username']:<12} password={c['password']:<24} region={c['region']}")
    if cases:
        n = seed_cases(demo_feature_collection()["features"])
        click.echo(f"{n} demo cases in 安阳街道 (330381001), over the last four weeks.")
