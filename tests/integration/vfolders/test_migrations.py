"""The vfolder migration (0002) goes up, down and up again, and leaves the schema
the models describe, on SQLite and PostgreSQL."""
from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from corral.manager.db.engine import create_engine
from corral.manager.db.migrate import alembic_config
from corral.manager.db.models import Base


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
        assert {"vfolders", "vfolder_shares"} <= tables and version == "0002"
        assert diff == [], diff

        async with engine.begin() as conn:
            await conn.run_sync(_migrate, "downgrade", "0001")
            tables, _, version = await conn.run_sync(_state)
        assert not {"vfolders", "vfolder_shares"} & tables and "sessions" in tables and version == "0001"

        async with engine.begin() as conn:
            await conn.run_sync(_migrate, "upgrade", "head")
            tables, diff, version = await conn.run_sync(_state)
        assert {"vfolders", "vfolder_shares"} <= tables and version == "0002" and diff == []
    finally:
        await engine.dispose()
