"""projects and their members

Projects (a unique name, a description) and their members ("member" or
"manager"). Project vfolders used to name their project in ``owner_id``;
now ``owner_id`` holds the project's id. Upgrading creates a project for
every project name in use, with the creators of its vfolders as managers;
downgrading puts the names back.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 09:12:04.118203
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# The tables as this revision knows them (never the application's models,
# which move on).
_vfolders = sa.table(
    'vfolders',
    sa.column('id', sa.String(36)),
    sa.column('owner_kind', sa.String(16)),
    sa.column('owner_id', sa.String(64)),
    sa.column('creator_id', sa.String(36)),
    sa.column('created_at', sa.DateTime(timezone=True)),
)
_projects = sa.table(
    'projects',
    sa.column('id', sa.String(36)),
    sa.column('name', sa.String(64)),
    sa.column('description', sa.Text),
    sa.column('created_at', sa.DateTime(timezone=True)),
)
_members = sa.table(
    'project_members',
    sa.column('project_id', sa.String(36)),
    sa.column('user_id', sa.String(36)),
    sa.column('role', sa.String(16)),
    sa.column('created_at', sa.DateTime(timezone=True)),
)


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def upgrade() -> None:
    op.create_table('projects',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('project_members',
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'user_id')
    )
    with op.batch_alter_table('project_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_members_user_id'), ['user_id'], unique=False)

    _adopt_project_vfolders()


def _adopt_project_vfolders() -> None:
    """A project row per project name that vfolders use, its vfolders' creators as managers."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_vfolders.c.owner_id, _vfolders.c.creator_id, _vfolders.c.created_at)
        .where(_vfolders.c.owner_kind == 'project')
    ).all()
    first_seen: dict[str, datetime] = {}
    creators: dict[str, dict[str, datetime]] = {}
    for name, creator_id, created_at in rows:
        at = _utc(created_at)
        first_seen[name] = min(first_seen.get(name, at), at)
        by_user = creators.setdefault(name, {})
        by_user[creator_id] = min(by_user.get(creator_id, at), at)
    for name in sorted(first_seen):
        project_id = str(uuid.uuid4())
        bind.execute(_projects.insert().values(
            id=project_id, name=name, description='', created_at=first_seen[name],
        ))
        for user_id, since in sorted(creators[name].items()):
            bind.execute(_members.insert().values(
                project_id=project_id, user_id=user_id, role='manager', created_at=since,
            ))
        bind.execute(
            _vfolders.update()
            .where(_vfolders.c.owner_kind == 'project', _vfolders.c.owner_id == name)
            .values(owner_id=project_id)
        )


def downgrade() -> None:
    bind = op.get_bind()
    for project_id, name in bind.execute(sa.select(_projects.c.id, _projects.c.name)).all():
        bind.execute(
            _vfolders.update()
            .where(_vfolders.c.owner_kind == 'project', _vfolders.c.owner_id == project_id)
            .values(owner_id=name)
        )

    with op.batch_alter_table('project_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_members_user_id'))

    op.drop_table('project_members')
    op.drop_table('projects')
