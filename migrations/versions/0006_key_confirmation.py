"""a sign-in remembers when a security key was last used in it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Adding or removing a key, and an operator's change where operators must use keys, ask for a key
used in the last few minutes, not only for some second factor at some time."""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('browser_sessions') as batch_op:
        batch_op.add_column(sa.Column('key_at', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('browser_sessions') as batch_op:
        batch_op.drop_column('key_at')
