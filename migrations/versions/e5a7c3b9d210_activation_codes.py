"""activation codes

One-time codes (stored as HMAC-SHA256) for the first login of imported or reset accounts.

Revision ID: e5a7c3b9d210
Revises: 5a7c3e9d2b10
Create Date: 2026-12-02 20:20:00.000000

"""
from alembic import op
import sqlalchemy as sa

import app.database


# revision identifiers, used by Alembic.
revision = 'e5a7c3b9d210'
down_revision = '5a7c3e9d2b10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'activation_codes',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', app.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', app.database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_activation_codes_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_activation_codes')),
    )


def downgrade():
    op.drop_table('activation_codes')
