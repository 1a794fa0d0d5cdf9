"""server-side browser sessions, back-channel logout notices, per-school session lifetimes

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Sign-ins held in signed cookies before this revision end with it (there is no row for them):
everyone signs in once more."""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('logout_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('sid', sa.String(length=43), nullable=False),
    sa.Column('sub', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('give_up_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('leased_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_logout_notices_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_logout_notices'))
    )
    with op.batch_alter_table('logout_notices', schema=None) as batch_op:
        batch_op.create_index('ix_logout_notices_client', ['client_id', 'created_at'], unique=False)
        batch_op.create_index('ix_logout_notices_due', ['delivered_at', 'failed_at', 'next_attempt_at'], unique=False)

    op.create_table('browser_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sid', sa.String(length=43), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=True),
    sa.Column('provider', sa.String(length=10), nullable=False),
    sa.Column('amr', sa.JSON(), nullable=False),
    sa.Column('acr', sa.String(length=100), nullable=False),
    sa.Column('second_factor', sa.Boolean(), nullable=False),
    sa.Column('auth_time', sa.Integer(), nullable=False),
    sa.Column('second_factor_at', sa.Integer(), nullable=True),
    sa.Column('last_seen', sa.Integer(), nullable=False),
    sa.Column('pending_until', sa.Integer(), nullable=True),
    sa.Column('next_url', sa.String(length=2000), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('device', sa.String(length=100), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_browser_sessions_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_browser_sessions_tenant_id_tenants'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_browser_sessions')),
    sa.UniqueConstraint('sid', name=op.f('uq_browser_sessions_sid')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_browser_sessions_token_hash'))
    )
    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_browser_sessions_account', ['account_id', 'last_seen'], unique=False)
        batch_op.create_index(batch_op.f('ix_browser_sessions_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')

    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sid', sa.String(length=43), nullable=True))

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('backchannel_logout_uri', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('backchannel_logout_session_required', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sign_ins_ended', sa.Integer(), nullable=True))

    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_max_age', sa.Integer(), nullable=False, server_default='28800'))
        batch_op.add_column(sa.Column('session_idle_timeout', sa.Integer(), nullable=False, server_default='1800'))

    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sid', sa.String(length=43), nullable=True))
        batch_op.add_column(sa.Column('offline', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_tokens_sid'), ['sid'], unique=False)



def downgrade():
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tokens_sid'))
        batch_op.drop_column('offline')
        batch_op.drop_column('sid')

    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('session_idle_timeout')
        batch_op.drop_column('session_max_age')

    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_column('sign_ins_ended')

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('backchannel_logout_session_required')
        batch_op.drop_column('backchannel_logout_uri')

    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_column('sid')

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), nullable=False, server_default='0'))

    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_browser_sessions_expires_at'))
        batch_op.drop_index('ix_browser_sessions_account')

    op.drop_table('browser_sessions')
    with op.batch_alter_table('logout_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_logout_notices_due')
        batch_op.drop_index('ix_logout_notices_client')

    op.drop_table('logout_notices')
