"""vfolders and shares

Vfolders (owned by a user or a project, on a storage proxy's volume, with
an optional quota; "ready" or "trashed") and their shares with other users.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 11:51:38.987695
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('vfolders',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('owner_kind', sa.String(length=16), nullable=False),
    sa.Column('owner_id', sa.String(length=64), nullable=False),
    sa.Column('creator_id', sa.String(length=36), nullable=False),
    sa.Column('proxy', sa.String(length=128), nullable=False),
    sa.Column('volume', sa.String(length=64), nullable=False),
    sa.Column('vfid', sa.String(length=64), nullable=False),
    sa.Column('quota_bytes', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('trashed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('vfid')
    )
    with op.batch_alter_table('vfolders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vfolders_creator_id'), ['creator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vfolders_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_vfolders_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vfolders_status'), ['status'], unique=False)
        batch_op.create_index('uq_vfolders_owner_name_ready', ['owner_kind', 'owner_id', 'name'], unique=True, sqlite_where=sa.text("status = 'ready'"), postgresql_where=sa.text("status = 'ready'"))

    op.create_table('vfolder_shares',
    sa.Column('vfolder_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('permission', sa.String(length=2), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['vfolder_id'], ['vfolders.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('vfolder_id', 'user_id')
    )
    with op.batch_alter_table('vfolder_shares', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vfolder_shares_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('vfolder_shares', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vfolder_shares_user_id'))

    op.drop_table('vfolder_shares')
    with op.batch_alter_table('vfolders', schema=None) as batch_op:
        batch_op.drop_index('uq_vfolders_owner_name_ready', sqlite_where=sa.text("status = 'ready'"), postgresql_where=sa.text("status = 'ready'"))
        batch_op.drop_index(batch_op.f('ix_vfolders_status'))
        batch_op.drop_index(batch_op.f('ix_vfolders_owner_id'))
        batch_op.drop_index(batch_op.f('ix_vfolders_name'))
        batch_op.drop_index(batch_op.f('ix_vfolders_creator_id'))

    op.drop_table('vfolders')
