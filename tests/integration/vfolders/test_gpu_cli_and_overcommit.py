"""(Filed here with the issue-10 CLI tests.) A mock-GPU agent fed raw `nvidia-smi topo -m`
output; `corral admin agents [--gpus]` and `corral session info` readable; an agent
restarted without its GPUs says it is overcommitted. Real manager, agent, containers."""
from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import AsyncIterator

import pytest
from click.testing import CliRunner

from corral.client.cli.main import main as cli

from tests.integration.spine.cluster import LiveCluster, wait_for
from tests.integration.spine.conftest import base_image  # noqa: F401

pytestmark = [pytest.mark.docker]
GPUS = Path(__file__).resolve().parents[3] / "configs" / "gpus"


@pytest.fixture
async def cluster(tmp_path: Path, base_image: str) -> AsyncIterator[LiveCluster]:  # noqa: F811
    cluster = LiveCluster(db_url=f"sqlite:///{tmp_path / 'corral.db'}", heartbeat_timeout_s=5.0)
    await cluster.start_manager()
    try:
        yield cluster
    finally:
        await cluster.stop()


async def _corral(cluster: LiveCluster, *args: str) -> tuple[int, str]:
    env = {"CORRAL_ENDPOINT": cluster.manager.url, "CORRAL_ACCESS_KEY": cluster.admin_access_key,
           "CORRAL_SECRET_KEY": cluster.admin_secret_key, "CORRAL_CONFIG": "/nonexistent/client.toml",
           "COLUMNS": "250"}
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)
    return result.exit_code, result.output


async def test_raw_topology_readable_usage_and_overcommit(cluster: LiveCluster, tmp_path: Path) -> None:
    topo = tmp_path / "topo.txt"
    shutil.copy(GPUS / "dgx1-v100-topo.txt", topo)
    shutil.copy(GPUS / "dgx1-v100-topo.csv", tmp_path / "topo.csv")
    gpu = {"plugin": "mock", "topology": str(topo)}
    agent = await cluster.start_agent("g", gpu=gpu, resources={"cpu_count": 8, "mem": "4g"})
    client = cluster.client()
    whole = await client.create_session(resources={"cuda.device": 2, "cpu": 1}, name="whole")
    part = await client.create_session(resources={"cuda.shares": "0.25", "cpu": 1}, name="part")
    for s in (whole, part):
        await client.wait_for_status(s.id, {"RUNNING"}, timeout=90)

    code, out = await _corral(cluster, "admin", "agents", "--gpus")
    assert code == 0, out
    assert "5 free of 8 (3 in use: 2 whole, 1 shared 0.25)" in out
    assert "Tesla V100-SXM2-16GB" in out and "shared 0.25" in out
    code, out = await _corral(cluster, "session", "info", "part")
    assert code == 0, out
    assert "Allocation of kernel" in out and "MEM LIMIT" in out and "0.25" in out and "…" not in out

    # Restart the agent without GPUs (like `corral up` without --mock-gpus): it re-attaches and says so.
    await agent.stop()
    cluster.agents.remove(agent)
    await cluster.start_agent("g", resources={"cpu_count": 8, "mem": "4g"})

    async def noted() -> str | None:
        agents = await client.list_agents()
        reason = agents[0].status_reason
        return reason if reason.startswith("overcommitted") else None

    reason = await wait_for(noted, timeout=20)
    assert "GPU(s)" in reason
    code, out = await _corral(cluster, "admin", "agents")
    assert code == 0 and "overcommitted" in out
    for s in (whole, part):
        await client.destroy_session(s.id)
    await wait_for(lambda: _cleared(client), timeout=30)


async def _cleared(client) -> bool:  # type: ignore[no-untyped-def]
    return not (await client.list_agents())[0].status_reason.startswith("overcommitted")
