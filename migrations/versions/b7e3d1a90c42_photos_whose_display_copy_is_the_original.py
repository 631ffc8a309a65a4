"""photos whose display copy is the original

A clean upload (an upright, display-sized, light JPEG with no metadata: what the PWA's canvas sends) is
its own display copy; such a photo is stored as two objects (original, thumbnail) and its display variant
is served from the original's object. Photos stored before this keep their three objects (false).

Revision ID: b7e3d1a90c42
Revises: 52c6fd65cce6
Create Date: 2026-11-25 18:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7e3d1a90c42'
down_revision = '52c6fd65cce6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('photos', schema=None) as batch_op:
        batch_op.add_column(sa.Column('display_is_original', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade():
    # Going back needs the display objects the older code expects: copy each such photo's original to its
    # display key first (e.g. with `aws s3 cp`), or these photos' display copies will be missing.
    with op.batch_alter_table('photos', schema=None) as batch_op:
        batch_op.drop_column('display_is_original')
