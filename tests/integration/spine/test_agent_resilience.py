"""Agents come and go; sessions survive restarts and are marked when an agent is lost."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiodocker
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


async def test_lost_agent_keeps_its_sessions_running_and_they_carry_on_when_it_is_back(cluster: LiveCluster) -> None:
    client = cluster.client()
    session = await client.create_session(resources={"mem": "128m"})
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
    old = cluster.agents.pop()
    await old.stop()

    async def marked_lost() -> bool:
        return [a.status for a in await client.list_agents() if a.id == old.agent_id] == ["LOST"]

    await wait_for(marked_lost, timeout=30)

    async def says_lost() -> bool:
        return "agent lost" in (await client.get_session(session.id)).raw["status_reason"]

    await wait_for(says_lost, timeout=10)  # the sessions are settled right after the agent is marked
    info = await client.get_session(session.id)
    # Still RUNNING (no terminal state is ever left again), and saying what is going on.
    assert info.status == "RUNNING"
    assert "agent lost" in info.raw["status_reason"] and old.agent_id in info.raw["status_reason"]

    back = AgentServer(cluster.agent_config("a1"))
    await back.start()
    cluster.agents.append(back)

    async def is_back() -> bool:
        return "is back" in (await client.get_session(session.id)).raw["status_reason"]

    await wait_for(is_back, timeout=20)
    result = await client.execute_collect(session.id, "print('alive')")
    assert result.stdout == "alive\n"
    statuses = [h["status"] for h in (await client.get_session(session.id)).raw["status_history"]]
    assert statuses == ["PENDING", "SCHEDULED", "PREPARING", "RUNNING"]
    await client.destroy_session(session.id)
    await client.wait_for_status(session.id, {"TERMINATED"}, timeout=30)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_sessions_on_an_agent_lost_for_longer_than_the_grace_fail(db_url: str, base_image: str) -> None:
    cluster = LiveCluster(db_url=db_url, heartbeat_timeout_s=2.0)
    await cluster.start_manager(lifecycle={"interval_s": 0.5, "lost_grace_s": 1.0})
    await cluster.start_agent()
    try:
        client = cluster.client()
        session = await client.create_session(resources={"mem": "128m"})
        await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
        agent = cluster.agents[0]
        await agent.stop()
        failed = await client.wait_for_status(session.id, {"ERROR"}, timeout=30)
        assert f"agent {agent.agent_id} lost for more than 1 s" in failed.raw["status_reason"]
        # When the agent comes back, the container it kept is removed: its session has ended.
        await cluster.start_agent()
        container_id = failed.raw["kernels"][0]["container_id"]

        async def container_gone() -> bool:
            async with aiodocker.Docker() as docker:
                try:
                    await docker.containers.get(container_id)
                except aiodocker.DockerError:
                    return True
            return False

        await wait_for(container_gone, timeout=30)
        assert (await client.get_session(session.id)).status == "ERROR"
    finally:
        await cluster.stop()


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


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_sessions_created_while_an_agent_is_down_wait_and_run_when_it_is_back(
    db_url: str, base_image: str
) -> None:
    """Between an agent's death and its LOST mark, new sessions placed there go back to the queue
    (saying why) instead of failing, and run once the agent is back."""
    cluster = LiveCluster(db_url=db_url, heartbeat_timeout_s=60.0)  # it stays ALIVE the whole time
    await cluster.start_manager(scheduler={"interval_s": 0.5, "unreachable_backoff_s": 0.5})
    await cluster.start_agent()
    try:
        client = cluster.client()
        down = cluster.agents.pop()
        await down.stop()
        sessions = [await client.create_session(resources={"mem": "128m"}) for _ in range(3)]

        async def all_requeued() -> bool:
            infos = [await client.get_session(s.id) for s in sessions]
            return all(
                i.status == "PENDING" and "PREPARING" in [h["status"] for h in i.raw["status_history"]]
                for i in infos
            )

        await wait_for(all_requeued, timeout=30)
        history = (await client.get_session(sessions[0].id)).raw["status_history"]
        assert any("could not be reached" in h["reason"] and "back in the queue" in h["reason"] for h in history)

        await cluster.start_agent()
        for session in sessions:
            running = await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
            assert running.raw["agent_id"] == down.agent_id
        for session in sessions:
            await client.destroy_session(session.id)
    finally:
        await cluster.stop()
