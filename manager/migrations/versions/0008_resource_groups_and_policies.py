"""scheduling policy: resource groups, resource policies, projects and priorities on sessions

``resource_groups``: a group's queue policy, backfill and preemption switches, scorer list, allowed
session types and users/projects; existing groups named by agents and sessions get a row with the
defaults (fifo with backfill, topology scoring, every type, everyone). ``resource_policies``: limits a
user or project is held to. ``users``: their policy, default group and project, fair-share weight;
``projects``: their policy and fair-share weight. ``sessions``: the project a session counts against
and its priority (0–100, 50 when not given); ``sessions.terminated_at`` is indexed for usage reports,
``kernels.status_changed_at`` for the scheduler's incremental snapshot.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:00:00.000000
"""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

DEFAULT_SCORERS = [{"name": "topology", "weight": 1.0}]
SESSION_TYPES = ["interactive", "batch"]


def upgrade() -> None:
    groups = op.create_table('resource_groups',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('queue_policy', sa.String(length=16), nullable=False),
        sa.Column('backfill', sa.Boolean(), nullable=False),
        sa.Column('preemption', sa.Boolean(), nullable=False),
        sa.Column('scorers', sa.JSON(), nullable=False),
        sa.Column('allowed_session_types', sa.JSON(), nullable=False),
        sa.Column('allowed_users', sa.JSON(), nullable=True),
        sa.Column('allowed_projects', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    op.create_table('resource_policies',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('max_concurrent_sessions', sa.Integer(), nullable=True),
        sa.Column('max_pending_sessions', sa.Integer(), nullable=True),
        sa.Column('max_slots', sa.JSON(), nullable=False),
        sa.Column('max_cluster_size', sa.Integer(), nullable=True),
        sa.Column('max_session_lifetime_s', sa.Float(), nullable=True),
        sa.Column('idle_timeout_s', sa.Float(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    # Plain columns (no foreign keys) so SQLite adds them in place; the tables they name are referenced
    # by the API, which checks that they exist.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resource_policy', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('default_group', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('default_project_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('fair_share', sa.Float(), server_default='1.0', nullable=False))
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resource_policy', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('fair_share', sa.Float(), server_default='1.0', nullable=False))
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('project_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('priority', sa.Integer(), server_default='50', nullable=False))
    op.create_index(op.f('ix_sessions_project_id'), 'sessions', ['project_id'], unique=False)
    op.create_index(op.f('ix_sessions_terminated_at'), 'sessions', ['terminated_at'], unique=False)
    op.create_index(op.f('ix_kernels_status_changed_at'), 'kernels', ['status_changed_at'], unique=False)

    bind = op.get_bind()
    names = {row[0] for row in bind.execute(sa.text('SELECT DISTINCT resource_group FROM agents'))}
    names |= {row[0] for row in bind.execute(sa.text('SELECT DISTINCT resource_group FROM sessions'))}
    names.add('default')
    now = datetime.now(timezone.utc)
    op.bulk_insert(groups, [
        {'name': name, 'description': '', 'queue_policy': 'fifo', 'backfill': True, 'preemption': False,
         'scorers': DEFAULT_SCORERS, 'allowed_session_types': SESSION_TYPES, 'allowed_users': None,
         'allowed_projects': None, 'created_at': now}
        for name in sorted(names)
    ])


def downgrade() -> None:
    op.drop_index(op.f('ix_kernels_status_changed_at'), table_name='kernels')
    op.drop_index(op.f('ix_sessions_terminated_at'), table_name='sessions')
    op.drop_index(op.f('ix_sessions_project_id'), table_name='sessions')
    drops = {'sessions': ['priority', 'project_id'], 'projects': ['fair_share', 'resource_policy'],
             'users': ['fair_share', 'default_project_id', 'default_group', 'resource_policy']}
    for table, columns in drops.items():
        if op.get_bind().dialect.name == 'sqlite':
            # In place (SQLite >= 3.35): batch mode would copy the table, which the foreign keys to it forbid.
            for column in columns:
                op.execute(f'ALTER TABLE {table} DROP COLUMN {column}')
            continue
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.drop_column(column)
    op.drop_table('resource_policies')
    op.drop_table('resource_groups')
