from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import pytest

from corral.kernels.builder import build_image

from .cluster import BASE_IMAGE, LiveCluster


@pytest.fixture(scope="session")
def base_image(docker_engine: str) -> str:
    asyncio.run(build_image("python"))
    return BASE_IMAGE


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'corral.db'}"
    return request.getfixturevalue("fresh_postgres_db")


@pytest.fixture
async def cluster(db_url: str, base_image: str) -> AsyncIterator[LiveCluster]:
    cluster = LiveCluster(db_url=db_url, heartbeat_timeout_s=3.0)
    await cluster.start_manager()
    await cluster.start_agent()
    try:
        yield cluster
    finally:
        await cluster.stop()
