"""a pending second step keeps a return address as long as a request line can carry

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

An authorization request with a long `state` made a return address over 2000 characters, which
PostgreSQL refused to store when the person still had their second step to take."""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('browser_sessions') as batch_op:
        batch_op.alter_column('next_url', existing_type=sa.String(length=2000), type_=sa.String(length=8192),
                              existing_nullable=True)


def downgrade():
    with op.batch_alter_table('browser_sessions') as batch_op:
        batch_op.alter_column('next_url', existing_type=sa.String(length=8192), type_=sa.String(length=2000),
                              existing_nullable=True)
