"""``flask cases …`` and ``flask calendar …``"""

from __future__ import annotations

import csv
from datetime import date

import click
from flask.cli import AppGroup

from app.cases import unit_of_work
from app.cases.deadlines import COVERAGE_AHEAD_DAYS, coverage
from app.cases.models import CalendarDay
from app.cases.transitions import escalate_overdue
from app.extensions import db

cases_cli = AppGroup("cases", help="Case maintenance.")
calendar_cli = AppGroup("calendar", help="The working-day calendar (holidays, make-up workdays).")

_KINDS = {"holiday": False, "休": False, "off": False, "workday": True, "班": True, "work": True}


@cases_cli.command("escalate-overdue")
def escalate_overdue_command():
    """Escalate every overdue open case one handling level (once per stage) and record why. Run it from
    cron every few minutes; running it again changes nothing."""
    escalated = escalate_overdue()
    unit_of_work.finish()
    db.session.commit()
    click.echo(f"escalated {len(escalated)} overdue case(s)")
    for case in escalated:
        click.echo(f"  {case.number} → {case.level}")


@calendar_cli.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
def import_calendar(file):
    """Import days that break the Monday-Friday rule from a CSV file of lines ``date,kind[,name]``: kind
    is ``holiday`` (or 休, a day off) or ``workday`` (or 班, a make-up workday, 调休上班), e.g.
    ``2026-10-01,holiday,国庆节`` and ``2026-10-10,workday,国庆节调休上班``. The years the State Council had
    announced when this release was made come with the first ``db upgrade``; import each later year's notice
    whole, as soon as it is published. Re-importing a day updates it."""
    rows = {}  # a day named twice: the later line wins
    for number, row in enumerate(csv.reader(file), start=1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        try:
            day = date.fromisoformat(row[0].strip())
            workday = _KINDS[row[1].strip().lower()]
        except (ValueError, IndexError, KeyError) as exc:
            raise click.ClickException(f"line {number}: expected date,holiday|workday[,name]: {row}") from exc
        rows[day] = (workday, row[2].strip() if len(row) > 2 else "")
    for day, (workday, name) in rows.items():
        entry = db.session.get(CalendarDay, day) or CalendarDay(day=day)
        entry.workday, entry.name = workday, name[:64]
        db.session.add(entry)
    db.session.commit()
    click.echo(f"imported {len(rows)} day(s)")
    cover = coverage()
    if cover["covered_until"]:
        click.echo(f"the calendar now knows the holidays up to {cover['covered_until'].isoformat()}")
    if not cover["ok"]:
        missing = ", ".join(map(str, cover["missing_years"]))
        click.echo(f"still missing: {missing} (the next {COVERAGE_AHEAD_DAYS} days)")
