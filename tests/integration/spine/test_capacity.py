"""GET /api/v1/capacity: what a resource group's alive agents have free now (the launch form's table).

No Docker: agents on the dummy backend with two mock GPUs; sessions placed on them hold real allocations.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from corral.agent.server import AgentServer
from corral.common.errors import InvalidRequest, NotFound

from .cluster import LiveCluster, wait_for

GPU_TOPOLOGY = Path(__file__).resolve().parents[3] / "configs" / "gpus" / "mock-2gpu.toml"
GiB = 1 << 30


@pytest.fixture
async def live(db_url: str) -> AsyncIterator[tuple[LiveCluster, list[AgentServer]]]:
    cluster = LiveCluster(db_url=db_url)
    await cluster.start_manager()
    # Not cluster.start_agent: its teardown asks Docker for leftover containers.
    agents = [
        AgentServer(cluster.agent_config("gpu", backend="dummy", gpu={"plugin": "mock", "topology": str(GPU_TOPOLOGY)},
                                         resources={"cpu_count": 8, "mem": "16g"})),
        AgentServer(cluster.agent_config("cpu", backend="dummy", resources={"cpu_count": 4, "mem": "4g"},
                                         resource_group="cpu-only")),
    ]
    for agent in agents:
        await agent.start()
        await agent.link.heartbeat_now()
    try:
        yield cluster, agents
    finally:
        for agent in agents:
            await agent.stop()
        await cluster.stop()


async def _capacity(client: Any, group: str | None = None) -> dict[str, Any]:
    return await client._json("GET", "/api/v1/capacity", query={"group": group} if group else None)


async def test_capacity_follows_allocations_per_node_and_gpu(live: tuple[LiveCluster, list[AgentServer]]) -> None:
    cluster, agents = live
    admin = cluster.client()
    empty = await _capacity(admin)
    assert empty["resource_group"] == "default"
    [node] = empty["nodes"]
    assert node["id"] == agents[0].agent_id and node["address"]  # admins see where it is
    cores = Decimal(node["cpu_total"])
    assert cores >= 2 and (node["cpu_free"], node["mem_total"], node["mem_free"]) == (str(cores), 16 * GiB, 16 * GiB)
    assert (node["gpus_total"], node["gpus_free"], node["max_free_share"]) == (2, 2, "1")
    assert [(g["index"], g["free_share"]) for g in node["gpus"]] == [(0, "1"), (1, "1")]
    assert node["gpus"][0]["model"] and node["gpus"][0]["memory"] > 0
    assert (empty["max_free_gpus"], empty["max_free_share"]) == (2, "1")

    quarter = await admin.create_session(resources={"cpu": "1.5", "mem": "1g", "cuda.shares": "0.25"})
    await admin.wait_for_status(quarter.id, {"RUNNING"}, timeout=30)
    after = await _capacity(admin)
    [node] = after["nodes"]
    assert (Decimal(node["cpu_free"]), node["mem_free"]) == (cores - Decimal("1.5"), 15 * GiB)
    assert sorted(g["free_share"] for g in node["gpus"]) == ["0.75", "1"]
    assert (node["gpus_free"], after["max_free_gpus"], after["max_free_share"]) == (1, 1, "1")

    whole = await admin.create_session(resources={"mem": "1g", "cuda.device": "1"})
    await admin.wait_for_status(whole.id, {"RUNNING"}, timeout=30)
    both = await _capacity(admin)
    assert (both["max_free_gpus"], both["max_free_share"]) == (0, "0.75")

    # Freed again once the sessions end.
    for session in (quarter, whole):
        await admin.destroy_session(session.id)
        await admin.wait_for_status(session.id, {"TERMINATED"}, timeout=30)

    async def freed() -> bool:
        return (await _capacity(admin))["max_free_gpus"] == 2

    await wait_for(freed, timeout=15)

    # Another group: only its agents; a node without GPUs has none to give.
    cpu_only = await _capacity(admin, "cpu-only")
    assert [n["id"] for n in cpu_only["nodes"]] == [agents[1].agent_id]
    assert (cpu_only["nodes"][0]["gpus_total"], cpu_only["nodes"][0]["gpus"], cpu_only["max_free_share"]) == (0, [], "0")


async def test_users_see_capacity_without_agent_addresses(live: tuple[LiveCluster, list[AgentServer]]) -> None:
    cluster, agents = live
    bob = cluster.client(*await cluster.add_user("bob"))
    seen = await _capacity(bob)
    assert [n["id"] for n in seen["nodes"]] == [agents[0].agent_id]
    assert "address" not in seen["nodes"][0]
    with pytest.raises(NotFound):
        await _capacity(bob, "no-such-group")
    with pytest.raises(InvalidRequest):
        await _capacity(bob, "not a name!")
    # A group closed to bob is as good as absent to him.
    admin = cluster.client()
    await admin.update_resource_group("cpu-only", allowed_users=["admin"])
    with pytest.raises(NotFound):
        await _capacity(bob, "cpu-only")
    assert (await _capacity(admin, "cpu-only"))["nodes"]
