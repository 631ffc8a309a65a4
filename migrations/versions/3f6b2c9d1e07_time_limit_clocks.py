"""time-limit clocks: natural or working time per rule and per stage

Each time limit counts on a clock (app/cases/clock.py): ``natural`` time, which never stops, or ``working``
time, the office hours of working days. Rules and stages that were there before count as the defaults say:
red natural, yellow and blue working. ``cases.stage_clock`` is the running stage's clock beside its deadline
(the queue reads it from the row). Open stages keep the deadline they had until their next change.

On SQLite the columns are added in place (ALTER TABLE ADD COLUMN, with their server default), so the
figures' triggers on case_stages stay as they are.

Revision ID: 3f6b2c9d1e07
Revises: c41f0a7d2e15
Create Date: 2026-12-02 13:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

from app.stats import rollup


# revision identifiers, used by Alembic.
revision = '3f6b2c9d1e07'
down_revision = 'c41f0a7d2e15'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sla_rules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('clock', sa.String(length=8), server_default='working', nullable=False))
    with op.batch_alter_table('case_stages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('clock', sa.String(length=8), server_default='working', nullable=False))
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stage_clock', sa.String(length=8), nullable=True))
    op.execute("UPDATE sla_rules SET clock = 'natural' WHERE risk_level = 'red'")
    op.execute("UPDATE case_stages SET clock = 'natural' WHERE case_id IN (SELECT id FROM cases WHERE risk_level = 'red')")
    op.execute("UPDATE cases SET stage_clock = CASE WHEN risk_level = 'red' THEN 'natural' ELSE 'working' END "
               "WHERE stage IS NOT NULL")


def downgrade():
    # SQLite drops a column by copying the table, which the figures' triggers cannot survive: off meanwhile.
    bind = op.get_bind()
    rollup.uninstall(bind)
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('stage_clock')
    with op.batch_alter_table('case_stages', schema=None) as batch_op:
        batch_op.drop_column('clock')
    with op.batch_alter_table('sla_rules', schema=None) as batch_op:
        batch_op.drop_column('clock')
    rollup.install(bind)
