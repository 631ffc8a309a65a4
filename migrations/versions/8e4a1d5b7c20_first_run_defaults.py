"""first-run defaults: categories, time limits with their clocks, the State Council's calendar

A fresh ``flask db upgrade`` is a working system: this revision adds the default categories, the general
time limits (by stage and colour, red on natural time, yellow and blue on working time) and the holidays
and make-up workdays (调休) of every year the installed ``chinese-calendar`` package knows
(app/cases/defaults.py, app/cases/official_calendar.py cites the notices). Only what is missing is added:
a database that already has categories, rules or calendar days keeps them as they are (an admin's renamed
category, a re-timed rule or a locally imported day is never overwritten).

A data migration rather than a step after every upgrade: it runs once per database, in the same
transaction as the schema on PostgreSQL, and is recorded in alembic_version, so upgrading again can neither
duplicate nor bring back anything. Years the package learns later come with a release's own migration
calling ``defaults.install`` again, or by ``flask calendar import``.

Revision ID: 8e4a1d5b7c20
Revises: 3f6b2c9d1e07
Create Date: 2026-12-02 13:05:00.000000

"""
from alembic import op

from app.cases import defaults


# revision identifiers, used by Alembic.
revision = '8e4a1d5b7c20'
down_revision = '3f6b2c9d1e07'
branch_labels = None
depends_on = None


def upgrade():
    defaults.install(op.get_bind())


def downgrade():
    # The rows stay: cases refer to the categories, and an admin may have changed any of them since.
    pass
