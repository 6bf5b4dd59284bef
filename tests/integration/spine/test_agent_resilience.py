"""Agents come and go; sessions survive restarts and are marked when an agent is lost."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from corral.agent.server import AgentServer

from .cluster import LiveCluster, wait_for
from .docker_proxy import DockerSocketProxy

pytestmark = [pytest.mark.docker]


async def test_agent_restart_reattaches_running_sessions(cluster: LiveCluster) -> None:
    client = cluster.client()
    session = await client.create_session(resources={"mem": "128m"})
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
    await client.execute_collect(session.id, "kept = 'still here'")

    old = cluster.agents.pop()
    await old.stop()  # containers stay up
    restarted = AgentServer(cluster.agent_config("a1"))
    await restarted.start()
    cluster.agents.append(restarted)
    assert session.id in {r.session_id for r in restarted.kernels.records.values()}

    result = await client.execute_collect(session.id, "print(kept)")
    assert result.stdout == "still here\n"
    info = await client.get_session(session.id)
    assert info.status == "RUNNING"
    await client.destroy_session(session.id)
    await client.wait_for_status(session.id, {"TERMINATED"}, timeout=30)


async def test_batch_that_ended_while_agent_was_down_is_settled(cluster: LiveCluster) -> None:
    client = cluster.client()
    session = await client.create_session(type="batch", command="sleep 1.5; exit 4", resources={"mem": "128m"})
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
    old = cluster.agents.pop()
    await old.stop()
    await asyncio.sleep(2.5)
    restarted = AgentServer(cluster.agent_config("a1"))
    await restarted.start()
    cluster.agents.append(restarted)
    ended = await client.wait_for_status(session.id, {"TERMINATED", "ERROR"}, timeout=30)
    assert ended.status == "TERMINATED" and ended.raw["exit_code"] == 4


async def test_lost_agent_marks_sessions_and_recovers_when_back(cluster: LiveCluster) -> None:
    client = cluster.client()
    session = await client.create_session(resources={"mem": "128m"})
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
    old = cluster.agents.pop()
    await old.stop()
    lost = await client.wait_for_status(session.id, {"ERROR"}, timeout=30)
    assert "agent lost" in lost.raw["status_reason"] and old.agent_id in lost.raw["status_reason"]
    agents = await client.list_agents()
    assert [a.status for a in agents if a.id == old.agent_id] == ["LOST"]

    back = AgentServer(cluster.agent_config("a1"))
    await back.start()
    cluster.agents.append(back)

    async def running() -> bool:
        return (await client.get_session(session.id)).status == "RUNNING"

    await wait_for(running, timeout=20)
    result = await client.execute_collect(session.id, "print('alive')")
    assert result.stdout == "alive\n"
    await client.destroy_session(session.id)


async def test_docker_outage_is_a_clear_error_and_the_agent_recovers(cluster: LiveCluster) -> None:
    proxy = DockerSocketProxy(Path(cluster.root) / "docker.sock")
    await proxy.start()
    os.environ["DOCKER_HOST"] = f"unix://{proxy.path}"
    try:
        agent = await cluster.start_agent("flaky", resources={"cpu_count": 64})  # the only node big enough
    finally:
        del os.environ["DOCKER_HOST"]
    client = cluster.client()
    await proxy.stop()
    session = await client.create_session(resources={"cpu": "33", "mem": "128m"})
    failed = await client.wait_for_status(session.id, {"ERROR", "RUNNING"}, timeout=60)
    assert failed.status == "ERROR"
    assert "Docker" in failed.raw["status_reason"], failed.raw["status_reason"]
    await agent.link.heartbeat_now()  # the agent itself is still fine

    await proxy.start()
    retry = await client.create_session(resources={"cpu": "33", "mem": "128m"})
    ok = await client.wait_for_status(retry.id, {"RUNNING", "ERROR"}, timeout=60)
    assert ok.status == "RUNNING", ok.raw["status_reason"]
    assert ok.raw["agent_id"] == agent.agent_id
    await client.destroy_session(retry.id)
    await client.wait_for_status(retry.id, {"TERMINATED"}, timeout=30)
    await proxy.stop()
