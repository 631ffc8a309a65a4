"""cases: indexes on (scope column, change_seq) for the open app's "anything new?" ETag

Revision ID: 5a7c3e9d2b10
Revises: a9d3e5f7b1c2
Create Date: 2026-12-02 19:40:00

Each single-column index on a scope column becomes a two-column one with change_seq behind it: the same
look-ups by that column, and the newest change in a scope in one index step (app/cases/watch.py).
"""
from alembic import op

revision = '5a7c3e9d2b10'
down_revision = 'a9d3e5f7b1c2'
branch_labels = None
depends_on = None

PAIRS = (("reporter", "reporter_id"), ("assignee", "assignee_id"), ("grid", "grid_code"),
         ("village", "village_code"), ("township", "township_code"), ("city", "city_code"))


def upgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        for name, column in PAIRS:
            batch_op.drop_index(f'ix_cases_{column}')
            batch_op.create_index(f'ix_cases_{name}_seq', [column, 'change_seq'], unique=False)


def downgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        for name, column in PAIRS:
            batch_op.drop_index(f'ix_cases_{name}_seq')
            batch_op.create_index(f'ix_cases_{column}', [column], unique=False)
