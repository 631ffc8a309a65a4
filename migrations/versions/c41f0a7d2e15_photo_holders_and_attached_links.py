"""photo holders and attached photo links (proof of possession)

A photo's hash is a name, not a key: linking it to a case attaches the photo only when the user who
linked it has shown they hold its bytes (``photo_holders``: they uploaded them) or could see the photo
already. Until then the link is one of the case's missing photos and lets nobody see the photo.

Photos stored before this count as held by their uploader, and links to them as attached (what was
visible stays visible); links to photos that never arrived wait for their linker's upload.

Revision ID: c41f0a7d2e15
Revises: b7e3d1a90c42
Create Date: 2026-12-02 09:30:00.000000

"""
from alembic import op
import sqlalchemy as sa

import app.database


# revision identifiers, used by Alembic.
revision = 'c41f0a7d2e15'
down_revision = 'b7e3d1a90c42'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'photo_holders',
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('shown_at', app.database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['sha256'], ['photos.sha256'], name=op.f('fk_photo_holders_sha256_photos')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_photo_holders_user_id_users')),
        sa.PrimaryKeyConstraint('sha256', 'user_id', name=op.f('pk_photo_holders')),
    )
    with op.batch_alter_table('photo_holders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_photo_holders_user_id'), ['user_id'], unique=False)
    with op.batch_alter_table('case_photos', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attached', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute("INSERT INTO photo_holders (sha256, user_id, shown_at) "
               "SELECT sha256, uploaded_by, stored_at FROM photos WHERE uploaded_by IS NOT NULL")
    op.execute("UPDATE case_photos SET attached = true "
               "WHERE sha256 IN (SELECT sha256 FROM photos)")


def downgrade():
    with op.batch_alter_table('case_photos', schema=None) as batch_op:
        batch_op.drop_column('attached')
    with op.batch_alter_table('photo_holders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_photo_holders_user_id'))
    op.drop_table('photo_holders')
