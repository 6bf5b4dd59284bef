"""The dummy backend (scale simulation): the same manager paths, no containers."""
from __future__ import annotations

import pytest

from .cluster import LiveCluster

pytestmark = [pytest.mark.docker]


async def test_sessions_run_on_a_dummy_agent_without_containers(cluster: LiveCluster) -> None:
    dummy = await cluster.start_agent("sim", backend="dummy", resources={"cpu_count": 512}, resource_group="sim")
    client = cluster.client()
    session = await client.create_session(resources={"cpu": "256", "mem": "128m"}, resource_group="sim")
    running = await client.wait_for_status(session.id, {"RUNNING"}, timeout=30)
    assert running.raw["agent_id"] == dummy.agent_id
    assert running.raw["kernels"][0]["container_id"].startswith("dummy-")
    result = await client.execute_collect(session.id, "print('never runs')")
    assert result.exit_code == 0 and result.stdout == ""
    await client.destroy_session(session.id)
    await client.wait_for_status(session.id, {"TERMINATED"}, timeout=30)
