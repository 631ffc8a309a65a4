"""``flask users …``"""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from app.errors import DomainError
from app.users import services
from app.users.models import ROLES

users_cli = AppGroup("users", help="Manage users.")


def _fail(exc: DomainError):
    details = "; ".join(f"{k}: {', '.join(v)}" for k, v in (exc.errors or {}).items())
    raise click.ClickException(f"{exc.code}{': ' + details if details else ''}")


@users_cli.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--region", "region_code", required=True, help="code of the user's region (their scope)")
@click.option("--name", "display_name", default="", help="display name")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
def create(username, role, region_code, display_name, password_stdin):
    """Create a user with one role and one region. The password is read from standard input
    (--password-stdin) or asked for."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        user = services.create_user(username, role, region_code, password, display_name)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"created {user.username} ({user.role}, {user.region_code})")


@users_cli.command("disable")
@click.argument("username")
def disable(username):
    """Disable a user: their sessions end at once and they can no longer log in."""
    try:
        services.disable_user(username)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"disabled {username}")


@users_cli.command("enable")
@click.argument("username")
def enable(username):
    """Allow a disabled user to log in again."""
    try:
        services.enable_user(username)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"enabled {username}")


@users_cli.command("move")
@click.argument("username")
@click.option("--region", "region_code", required=True)
def move(username, region_code):
    """Move a user to another region (their scope changes on their next request)."""
    try:
        services.move_user(username, region_code)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"moved {username} to {region_code}")
