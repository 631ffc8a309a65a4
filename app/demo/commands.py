"""``flask demo …``"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.demo.services import seed_demo

demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("seed")
def seed():
    """Create a demo county-level city (瑞安市: streets, communities, grids, micro-grids) and one user of each
    role, then print their credentials. Safe to run again."""
    credentials = seed_demo()
    click.echo("demo city 瑞安市 (330381) is ready. Users:")
    for role, c in credentials.items():
        click.echo(f"  {role:<12} username={c['username']:<12} password={c['password']:<24} region={c['region']}")
