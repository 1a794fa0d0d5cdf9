"""account ownership: verified emails, memberships that wait for the person's acceptance

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Existing memberships count as accepted (the schools added them under the old rules). An address
counts as proven where the account has used a link mailed to it and nobody changed the address
since (an admin's change is in the audit log as member.changed with an email change)."""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_verified_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE memberships SET accepted_at = created_at")
    op.execute(
        """
        UPDATE accounts SET email_verified_at = (
            SELECT MAX(reset_links.used_at) FROM reset_links WHERE reset_links.account_id = accounts.id
        )
        WHERE EXISTS (SELECT 1 FROM reset_links
                      WHERE reset_links.account_id = accounts.id AND reset_links.used_at IS NOT NULL)
          AND NOT EXISTS (
              SELECT 1 FROM audit_events
              WHERE audit_events.subject_account_id = accounts.id AND audit_events.event = 'member.changed'
                AND audit_events.at > (SELECT MAX(r.used_at) FROM reset_links r WHERE r.account_id = accounts.id)
          )
        """
    )


def downgrade():
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_column('accepted_at')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('email_verified_at')
