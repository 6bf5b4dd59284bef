from __future__ import annotations

from typing import AsyncIterator

import pytest

from tests.integration.spine.cluster import LiveCluster
from tests.integration.spine.conftest import base_image  # noqa: F401 - a fixture shared with the spine tests


@pytest.fixture
async def storage_cluster(db_url: str) -> AsyncIterator[LiveCluster]:  # noqa: F811
    """A manager and a storage proxy, no agents: everything but containers."""
    cluster = LiveCluster(db_url=db_url, heartbeat_timeout_s=3.0)
    await cluster.start_storage()
    await cluster.start_manager()
    try:
        yield cluster
    finally:
        await cluster.stop()


@pytest.fixture
async def vf_cluster(db_url: str, base_image: str) -> AsyncIterator[LiveCluster]:  # noqa: F811
    """Storage proxy, manager and two agents: ``a1`` in resource group ``default``, ``a2`` in ``rg2``."""
    cluster = LiveCluster(db_url=db_url, heartbeat_timeout_s=3.0)
    await cluster.start_storage()
    await cluster.start_manager()
    await cluster.start_agent("a1")
    await cluster.start_agent("a2", resource_group="rg2")
    try:
        yield cluster
    finally:
        await cluster.stop()
