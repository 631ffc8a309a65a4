"""rate-limit counters every worker and node shares

flask-limiter's counters (login, sync and upload limits) in the application's database: the default
``gridcase+db://`` storage (app/ops/ratelimit_store.py). One row per key and window; expired rows are
deleted now and then through the index on ``expires_at``.

Revision ID: 3f9b2c7d8e41
Revises: 8e4a1d5b7c20
Create Date: 2026-12-03 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3f9b2c7d8e41'
down_revision = '8e4a1d5b7c20'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'rate_limit_counters',
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_limit_counters')),
    )
    with op.batch_alter_table('rate_limit_counters', schema=None) as batch_op:
        batch_op.create_index('ix_rate_limit_counters_expires_at', ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('rate_limit_counters', schema=None) as batch_op:
        batch_op.drop_index('ix_rate_limit_counters_expires_at')
    op.drop_table('rate_limit_counters')
