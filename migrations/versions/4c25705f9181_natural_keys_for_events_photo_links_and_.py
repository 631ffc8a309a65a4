"""natural keys for events, photo links and stages

Revision ID: 4c25705f9181
Revises: 854dc2c45d45
Create Date: 2026-11-25 08:35:51.964694

"""
from alembic import op
import sqlalchemy as sa

import app.database


# revision identifiers, used by Alembic.
revision = '4c25705f9181'
down_revision = '854dc2c45d45'
branch_labels = None
depends_on = None


def upgrade():
    # Natural keys (case, version), (case, photo, role), (case, stage, start) replace the autoincrement ids,
    # so the unit of work inserts a sync batch's rows in one statement per table on every engine.
    with op.batch_alter_table('case_events', recreate='auto') as batch_op:
        batch_op.drop_constraint('uq_case_events_case_version', type_='unique')
        batch_op.drop_constraint('pk_case_events', type_='primary')
        batch_op.drop_column('id')
        batch_op.create_primary_key('pk_case_events', ['case_id', 'version'])

    with op.batch_alter_table('case_photos', recreate='auto') as batch_op:
        batch_op.add_column(sa.Column('position', sa.Integer(), nullable=False, server_default='0'))
        batch_op.drop_index('ix_case_photos_case_id')
        batch_op.drop_constraint('uq_case_photos_case_sha_role', type_='unique')
        batch_op.drop_constraint('pk_case_photos', type_='primary')
        batch_op.drop_column('id')
        batch_op.create_primary_key('pk_case_photos', ['case_id', 'sha256', 'role'])
    with op.batch_alter_table('case_photos') as batch_op:
        batch_op.alter_column('position', server_default=None)

    with op.batch_alter_table('case_stages', recreate='auto') as batch_op:
        batch_op.drop_index('ix_case_stages_case_id')
        batch_op.drop_constraint('pk_case_stages', type_='primary')
        batch_op.drop_column('id')
        batch_op.create_primary_key('pk_case_stages', ['case_id', 'stage', 'started_at'])


def downgrade():
    with op.batch_alter_table('case_stages', recreate='always') as batch_op:
        batch_op.drop_constraint('pk_case_stages', type_='primary')
        batch_op.add_column(sa.Column('id', sa.Integer(), nullable=False, autoincrement=True))
        batch_op.create_primary_key('pk_case_stages', ['id'])
        batch_op.create_index('ix_case_stages_case_id', ['case_id'], unique=False)

    with op.batch_alter_table('case_photos', recreate='always') as batch_op:
        batch_op.drop_constraint('pk_case_photos', type_='primary')
        batch_op.add_column(sa.Column('id', sa.Integer(), nullable=False, autoincrement=True))
        batch_op.create_primary_key('pk_case_photos', ['id'])
        batch_op.create_unique_constraint('uq_case_photos_case_sha_role', ['case_id', 'sha256', 'role'])
        batch_op.create_index('ix_case_photos_case_id', ['case_id'], unique=False)
        batch_op.drop_column('position')

    with op.batch_alter_table('case_events', recreate='always') as batch_op:
        batch_op.drop_constraint('pk_case_events', type_='primary')
        batch_op.add_column(sa.Column('id', sa.Integer(), nullable=False, autoincrement=True))
        batch_op.create_primary_key('pk_case_events', ['id'])
        batch_op.create_unique_constraint('uq_case_events_case_version', ['case_id', 'version'])
