"""Alembic environment: runs migrations on the connection handed in by
``corral.manager.db.migrate`` (or builds one from the URL for the alembic CLI)."""
from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from corral.manager.db.engine import create_engine
from corral.manager.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online_from_url(url: str) -> None:
    engine = create_engine(url)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_online_from_url(config.get_main_option("sqlalchemy.url")))
