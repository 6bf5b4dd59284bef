"""cluster sessions: a session's cluster mode and its own SSH key

``sessions.cluster_mode``: ``single-node`` (all kernels on one node, a private bridge network) or
``multi-node`` (kernels spread over nodes, host networking with a port block per session);
existing sessions are single-node (they all have one kernel). ``sessions.cluster_ssh_key``: the
private half (OpenSSH format) of the key a cluster session's kernels log in to each other with;
NULL for sessions of one kernel.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 03:20:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sessions') as batch:
        batch.add_column(sa.Column('cluster_mode', sa.String(16), nullable=False, server_default='single-node'))
        batch.add_column(sa.Column('cluster_ssh_key', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sessions') as batch:
        batch.drop_column('cluster_ssh_key')
        batch.drop_column('cluster_mode')
