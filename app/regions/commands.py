"""``flask regions …``"""

from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from app.regions.services import RegionImportFailed, import_regions

regions_cli = AppGroup("regions", help="Manage the region hierarchy.")


@regions_cli.command("import")
@click.argument("file", type=click.File("rb"))
def import_command(file):
    """Create or update regions from a GeoJSON FeatureCollection whose features carry
    properties {code, name, level, parent}. Checks everything first; writes nothing if anything is wrong."""
    try:
        doc = json.load(file)
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{file.name}: not valid JSON: {exc}") from exc
    total = len(doc.get("features", [])) if isinstance(doc, dict) and isinstance(doc.get("features"), list) else 0

    def progress(rows):
        with click.progressbar(rows, length=total, label="检查 checking", file=sys.stderr,
                               show_pos=True) as bar:
            yield from bar

    try:
        result = import_regions(doc, tolerance_m=current_app.config["REGION_CONTAINMENT_TOLERANCE_M"],
                                progress=progress)
    except RegionImportFailed as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        raise click.ClickException(f"{len(exc.problems)} problem(s); nothing was imported") from exc
    click.echo(f"imported: {result['created']} created, {result['updated']} updated, {result['moved']} moved")
