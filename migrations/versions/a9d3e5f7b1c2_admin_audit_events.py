"""admin audit events

Every admin action (people, categories, time limits, calendar, regions): who, when, what changed.

Revision ID: a9d3e5f7b1c2
Revises: 3f9b2c7d8e41
Create Date: 2026-12-02 19:10:00.000000

"""
from alembic import op
import sqlalchemy as sa

import app.database


# revision identifiers, used by Alembic.
revision = 'a9d3e5f7b1c2'
down_revision = '3f9b2c7d8e41'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'admin_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', app.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=48), nullable=False),
        sa.Column('target_type', sa.String(length=24), nullable=False),
        sa.Column('target_id', sa.String(length=64), nullable=True),
        sa.Column('region_code', sa.String(length=32), nullable=True),
        sa.Column('summary', sa.String(length=255), nullable=False),
        sa.Column('changes', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_admin_events_actor_id_users')),
        sa.ForeignKeyConstraint(['region_code'], ['regions.code'], name=op.f('fk_admin_events_region_code_regions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_events')),
    )
    with op.batch_alter_table('admin_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_events_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_admin_events_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_admin_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_admin_events_region_code'), ['region_code'], unique=False)


def downgrade():
    with op.batch_alter_table('admin_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_events_region_code'))
        batch_op.drop_index(batch_op.f('ix_admin_events_at'))
        batch_op.drop_index(batch_op.f('ix_admin_events_actor_id'))
        batch_op.drop_index(batch_op.f('ix_admin_events_action'))
    op.drop_table('admin_events')
