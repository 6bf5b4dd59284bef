"""The vfolder (0002), project (0003) and request nonce (0004) migrations go up, down
and up again, leave the schema the models describe and carry the data across, on
SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from corral.manager.db.engine import create_engine
from corral.manager.db.migrate import alembic_config
from corral.manager.db.models import Base

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def _migrate(connection: Connection, action: str, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    getattr(command, action)(cfg, revision)


def _state(connection: Connection) -> tuple[set[str], list[object], str | None]:
    tables = set(inspect(connection).get_table_names())
    diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": False}), Base.metadata)
    version = MigrationContext.configure(connection).get_current_revision()
    return tables, diff, version


async def test_vfolder_migration_up_down_up(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_migrate, "upgrade", "head")
            tables, diff, version = await conn.run_sync(_state)
        assert {"vfolders", "vfolder_shares", "projects", "project_members"} <= tables and version == HEAD
        assert diff == [], diff

        async with engine.begin() as conn:
            await conn.run_sync(_migrate, "downgrade", "0001")
            tables, _, version = await conn.run_sync(_state)
        assert not {"vfolders", "vfolder_shares"} & tables and "sessions" in tables and version == "0001"

        async with engine.begin() as conn:
            await conn.run_sync(_migrate, "upgrade", "head")
            tables, diff, version = await conn.run_sync(_state)
        assert {"vfolders", "vfolder_shares", "projects", "project_members"} <= tables
        assert version == HEAD and diff == []
    finally:
        await engine.dispose()


T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
_users = sa.table("users", sa.column("id", sa.String), sa.column("username", sa.String),
                  sa.column("role", sa.String), sa.column("created_at", sa.DateTime(timezone=True)))
_vfolders = sa.table(
    "vfolders", *(sa.column(c, sa.String) for c in (
        "id", "name", "owner_kind", "owner_id", "creator_id", "proxy", "volume", "vfid", "status")),
    sa.column("created_at", sa.DateTime(timezone=True)), sa.column("updated_at", sa.DateTime(timezone=True)),
)


def _seed_0002(connection: Connection) -> None:
    """Vfolders as 0002 knew them: project vfolders name their project in owner_id."""
    connection.execute(_users.insert(), [
        {"id": f"u-{name}", "username": name, "role": "user", "created_at": T0} for name in ("ann", "ben", "cy")
    ])
    rows = [
        ("v1", "data", "project", "ml", "u-ann", "ready", 2),
        ("v2", "ckpt", "project", "ml", "u-ben", "ready", 1),
        ("v3", "old", "project", "ml", "u-ann", "trashed", 3),
        ("v4", "docs", "project", "web", "u-cy", "ready", 4),
        ("v5", "home", "user", "u-ann", "u-ann", "ready", 5),
    ]
    connection.execute(_vfolders.insert(), [
        {"id": vid, "name": name, "owner_kind": kind, "owner_id": owner, "creator_id": creator, "proxy": "sp1",
         "volume": "vol1", "vfid": f"fid-{vid}", "status": status,
         "created_at": T0 + timedelta(days=day), "updated_at": T0 + timedelta(days=day)}
        for vid, name, kind, owner, creator, status, day in rows
    ])


def _read(connection: Connection) -> tuple[dict[str, str], dict[str, tuple[str, datetime]], set[tuple[str, str, str]]]:
    owners = dict(connection.execute(sa.text("SELECT id, owner_id FROM vfolders")).all())
    tables = set(inspect(connection).get_table_names())
    if "projects" not in tables:
        return owners, {}, set()
    projects = {
        name: (pid, created if created.tzinfo else created.replace(tzinfo=timezone.utc))
        for pid, name, created in connection.execute(
            sa.select(sa.column("id"), sa.column("name"), sa.column("created_at", sa.DateTime(timezone=True)))
            .select_from(sa.table("projects"))
        ).all()
    }
    members = {
        (project, user, role) for project, user, role in connection.execute(sa.text(
            "SELECT p.name, m.user_id, m.role FROM project_members m JOIN projects p ON p.id = m.project_id"
        )).all()
    }
    return owners, projects, members


async def test_project_migration_adopts_existing_project_vfolders_and_gives_them_back(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_migrate, "upgrade", "0002")
            await conn.run_sync(_seed_0002)
            await conn.run_sync(_migrate, "upgrade", "0003")
            owners, projects, members = await conn.run_sync(_read)
        assert set(projects) == {"ml", "web"}
        ml, web = projects["ml"][0], projects["web"][0]
        assert projects["ml"][1] == T0 + timedelta(days=1)  # the first of its vfolders
        # Every vfolder's creator manages its project; trashed vfolders count too.
        assert members == {("ml", "u-ann", "manager"), ("ml", "u-ben", "manager"), ("web", "u-cy", "manager")}
        assert owners == {"v1": ml, "v2": ml, "v3": ml, "v4": web, "v5": "u-ann"}

        async with engine.begin() as conn:
            await conn.run_sync(_migrate, "downgrade", "0002")
            owners, projects, _ = await conn.run_sync(_read)
            tables, _, version = await conn.run_sync(_state)
        assert version == "0002" and not {"projects", "project_members"} & tables
        assert owners == {"v1": "ml", "v2": "ml", "v3": "ml", "v4": "web", "v5": "u-ann"}

        async with engine.begin() as conn:
            await conn.run_sync(_migrate, "upgrade", "head")
            owners, projects, members = await conn.run_sync(_read)
            _, diff, version = await conn.run_sync(_state)
        assert version == HEAD and diff == [] and set(projects) == {"ml", "web"} and len(members) == 3
        assert owners["v1"] == projects["ml"][0] and owners["v5"] == "u-ann"
    finally:
        await engine.dispose()


def _nonce_indexes(connection: Connection) -> set[str]:
    return {index["name"] for index in inspect(connection).get_indexes("request_nonces")}


def _insert_nonce_twice(connection: Connection) -> None:
    nonces = sa.table("request_nonces", sa.column("access_key", sa.String), sa.column("nonce", sa.String),
                      sa.column("expires_at", sa.DateTime(timezone=True)))
    row = {"access_key": "AK1", "nonce": "n1", "expires_at": T0}
    connection.execute(nonces.insert(), [row])
    with pytest.raises(sa.exc.IntegrityError):
        with connection.begin_nested():
            connection.execute(nonces.insert(), [row])


async def test_request_nonce_migration_up_down_up(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_migrate, "upgrade", "0004")
            tables, _, version = await conn.run_sync(_state)
            assert version == "0004" and "request_nonces" in tables
            assert "ix_request_nonces_expires_at" in await conn.run_sync(_nonce_indexes)
            await conn.run_sync(_insert_nonce_twice)  # (access_key, nonce) is the primary key

        async with engine.begin() as conn:
            await conn.run_sync(_migrate, "downgrade", "0003")
            tables, _, version = await conn.run_sync(_state)
        assert version == "0003" and "request_nonces" not in tables and "projects" in tables

        async with engine.begin() as conn:
            await conn.run_sync(_migrate, "upgrade", "head")
            tables, diff, version = await conn.run_sync(_state)
        assert version == HEAD and "request_nonces" in tables and diff == [], diff
    finally:
        await engine.dispose()
