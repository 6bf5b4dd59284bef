"""web UI sign-in: users' passwords, disabled users, browser sessions

``users.password_hash``: argon2id hash of the web UI password (empty: no web sign-in).
``users.is_active``: an admin can disable a user (their keypairs and web sessions stop working);
existing users stay active. ``web_sessions``: one row per signed-in browser, keyed by the sha256 of
its cookie's token, with the CSRF token its changing requests must carry.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 10:00:00.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa



revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default ('1': true on both backends) lets SQLite add the column in place.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_hash', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('is_active', sa.Boolean(), server_default='1', nullable=False))
    op.create_table('web_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_web_sessions_user_id'), 'web_sessions', ['user_id'], unique=False)
    op.create_index(op.f('ix_web_sessions_expires_at'), 'web_sessions', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_web_sessions_expires_at'), table_name='web_sessions')
    op.drop_index(op.f('ix_web_sessions_user_id'), table_name='web_sessions')
    op.drop_table('web_sessions')
    if op.get_bind().dialect.name == 'sqlite':
        # In place (SQLite >= 3.35): batch mode would copy the table, which the foreign keys to it forbid.
        op.execute('ALTER TABLE users DROP COLUMN is_active')
        op.execute('ALTER TABLE users DROP COLUMN password_hash')
        return
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('is_active')
        batch_op.drop_column('password_hash')
