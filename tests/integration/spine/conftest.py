from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest

from corral.kernels.builder import build_image

from .cluster import BASE_IMAGE, LiveCluster


@pytest.fixture(scope="session")
def base_image(docker_engine: str) -> str:
    asyncio.run(build_image("python"))
    return BASE_IMAGE


@pytest.fixture
async def cluster(db_url: str, base_image: str) -> AsyncIterator[LiveCluster]:
    cluster = LiveCluster(db_url=db_url, heartbeat_timeout_s=3.0)
    await cluster.start_manager()
    await cluster.start_agent()
    try:
        yield cluster
    finally:
        await cluster.stop()


@pytest.fixture
async def manager_only(db_url: str) -> AsyncIterator[LiveCluster]:
    """A manager without agents (for what needs no container: sign-in, event streams)."""
    cluster = LiveCluster(db_url=db_url)
    await cluster.start_manager()
    try:
        yield cluster
    finally:
        await cluster.stop()
