"""``flask backup create DIR`` and ``flask backup restore DIR [--force]`` (docs/backup.md)."""

from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from app.backup.services import BackupError, create_backup, restore_backup

backup_cli = AppGroup("backup", help="Back up and restore the database and the photos.")


@backup_cli.command("create")
@click.argument("directory", type=click.Path(file_okay=False))
def create(directory: str):
    """Back up into DIRECTORY (new or empty): the database (SQLite online backup API or pg_dump of one
    snapshot), the photos (local storage) and manifest.json, written last."""
    try:
        manifest = create_backup(current_app.config, directory)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    media = manifest["media"]
    click.echo(f"backup of {manifest['engine']} written to {directory}: "
               f"{sum(manifest['counts'].values())} rows in {len(manifest['counts'])} tables, "
               f"{media['photos']} photos" + ("" if media["copied"] else f" (not copied: {media['storage']}, "
                                               "see docs/backup.md)"))
    if media["missing"]:
        click.echo(f"warning: {len(media['missing'])} photo objects were missing from the store, e.g. "
                   f"{media['missing'][:3]}", err=True)


@backup_cli.command("restore")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--force", is_flag=True, help="Replace the contents of a database that is not empty.")
@with_appcontext
def restore(directory: str, force: bool):
    """Restore the backup in DIRECTORY into the configured (empty) database and media store, then check the
    row counts against its manifest. Stop the app first."""
    from app.extensions import db

    db.session.remove()
    db.engine.dispose()  # no connection of ours may hold the database while it is replaced
    try:
        summary = restore_backup(current_app.config, directory, force=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(summary, ensure_ascii=False), file=sys.stdout)
