"""working inside sessions: SSH keys, kernel host keys, access records, last activity

``ssh_keys``: users' public keys, injected into every session they own.
``kernels.ssh_host_key`` / ``ssh_user``: what the agent reports once a kernel runs, so
``corral ssh-config`` can pin the session's real host key. ``session_access``: who opened a
terminal, tunnel or app in which session. ``sessions.last_activity_at``: the last use.
Existing rows need nothing: the new columns are empty until used.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 18:45:00.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa



revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ssh_keys',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('public_key', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'fingerprint', name='uq_ssh_keys_user_fingerprint')
    )
    op.create_index(op.f('ix_ssh_keys_user_id'), 'ssh_keys', ['user_id'], unique=False)
    op.create_table('session_access',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('service', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_session_access_session_id'), 'session_access', ['session_id'], unique=False)
    op.create_index(op.f('ix_session_access_user_id'), 'session_access', ['user_id'], unique=False)
    with op.batch_alter_table('kernels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ssh_host_key', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('ssh_user', sa.String(length=64), nullable=True))
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_activity_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('last_activity_at')
    with op.batch_alter_table('kernels', schema=None) as batch_op:
        batch_op.drop_column('ssh_user')
        batch_op.drop_column('ssh_host_key')
    op.drop_index(op.f('ix_session_access_user_id'), table_name='session_access')
    op.drop_index(op.f('ix_session_access_session_id'), table_name='session_access')
    op.drop_table('session_access')
    op.drop_index(op.f('ix_ssh_keys_user_id'), table_name='ssh_keys')
    op.drop_table('ssh_keys')
