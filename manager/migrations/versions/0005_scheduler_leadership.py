"""scheduler leadership fencing token; when a session entered its status

One row per scheduler lease (``name``) with the epoch of its current
holder. A manager that takes the lead raises the epoch; every reservation
checks it in the same transaction, so a manager that lost the lease cannot
commit one. Nothing to carry over.

``sessions.status_changed_at``: when the current status was entered, which
the lifecycle timeouts count from; existing rows take their latest known
time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 17:05:12.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scheduler_leadership',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE sessions SET status_changed_at = COALESCE(terminated_at, started_at, scheduled_at, created_at)"
    )


def downgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('status_changed_at')
    op.drop_table('scheduler_leadership')
