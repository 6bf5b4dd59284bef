"""The clustered form: PostgreSQL, etcd, two managers and two agents on one machine."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest

from .cluster import LiveCluster, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.postgres, pytest.mark.etcd]


@pytest.fixture
async def big_cluster(fresh_postgres_db: str, etcd_endpoint: str, base_image: str) -> AsyncIterator[LiveCluster]:
    cluster = LiveCluster(db_url=fresh_postgres_db, etcd_endpoints=[etcd_endpoint], heartbeat_timeout_s=5)
    await cluster.start_manager()
    await cluster.start_manager()
    # Each agent reports to a different manager; both share one database.
    await cluster.start_agent("a1", manager=cluster.managers[0], resources={"cpu_count": 2, "mem": "2g"})
    await cluster.start_agent("a2", manager=cluster.managers[1], resources={"cpu_count": 2, "mem": "2g"})
    try:
        yield cluster
    finally:
        await cluster.stop()


async def test_exactly_one_manager_schedules(big_cluster: LiveCluster) -> None:
    leaders = [m for m in big_cluster.managers if m.leader.is_leader]
    assert len(leaders) == 1


async def test_two_agents_share_the_work(big_cluster: LiveCluster) -> None:
    # Each session needs a whole 2-core node, so three sessions cannot all fit at once.
    clients = [big_cluster.client(manager=m) for m in big_cluster.managers]
    sessions = [
        await clients[i % 2].create_session(resources={"cpu": "2", "mem": "256m"}, name=f"job{i}") for i in range(3)
    ]
    first_two = [await clients[0].wait_for_status(s.id, {"RUNNING"}, timeout=60) for s in sessions[:2]]
    assert {s.raw["agent_id"] for s in first_two} == {a.agent_id for a in big_cluster.agents}
    third = await clients[1].get_session(sessions[2].id)
    assert third.status == "PENDING"  # FIFO: waits for room, is not lost

    await clients[0].destroy_session(sessions[0].id)
    running = await clients[1].wait_for_status(sessions[2].id, {"RUNNING"}, timeout=60)
    assert running.raw["agent_id"] == first_two[0].raw["agent_id"]
    for session in sessions[1:]:
        result = await clients[0].execute_collect(session.id, "print(6 * 7)")
        assert result.stdout == "42\n"
        await clients[0].destroy_session(session.id)


async def test_leadership_moves_when_the_leader_stops(big_cluster: LiveCluster) -> None:
    leader = next(m for m in big_cluster.managers if m.leader.is_leader)
    other = next(m for m in big_cluster.managers if m is not leader)
    await leader.stop()
    big_cluster.managers.remove(leader)

    async def took_over() -> bool:
        return other.leader.is_leader

    await wait_for(took_over, timeout=20)
    for agent in big_cluster.agents:
        agent.link.config.url = other.url  # the load balancer would do this
    client = big_cluster.client(manager=other)
    session = await client.create_session(resources={"cpu": "1", "mem": "128m"})
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
    await client.destroy_session(session.id)
    await asyncio.sleep(0)


async def test_waiting_session_says_why(big_cluster: LiveCluster) -> None:
    client = big_cluster.client()
    blockers = [await client.create_session(resources={"cpu": "2", "mem": "128m"}) for _ in range(2)]
    for blocker in blockers:
        await client.wait_for_status(blocker.id, {"RUNNING"}, timeout=60)
    waiting = await client.create_session(resources={"cpu": "2", "mem": "128m"})

    async def explained() -> bool:
        return "waiting for resources" in (await client.get_session(waiting.id)).raw["status_reason"]

    await wait_for(explained, timeout=10)
    assert "cpu=2" in (await client.get_session(waiting.id)).raw["status_reason"]
    for session in [*blockers, waiting]:
        await client.destroy_session(session.id)


async def test_a_manager_that_lost_the_lease_cannot_reserve(fresh_postgres_db: str, etcd_endpoint: str) -> None:
    """Fencing: once another manager holds the lease (and has claimed its epoch), the old leader's
    reservations fail, even if it still believes it leads."""
    from corral.manager.scheduler.fencing import LostLeadership

    cluster = LiveCluster(db_url=fresh_postgres_db, etcd_endpoints=[etcd_endpoint], heartbeat_timeout_s=5)
    old = await cluster.start_manager()
    new = await cluster.start_manager()
    try:
        await cluster.start_agent("sim", manager=new, backend="dummy", resources={"cpu_count": 8})
        assert old.leader.is_leader and not new.leader.is_leader
        await old.core.scheduler.epoch()
        # Freeze the old leader's view: its scheduler loop and lease keeper stop, so it stays convinced it leads.
        await old.core.scheduler.stop()
        old.leader._task.cancel()  # type: ignore[attr-defined]

        # The lease moves: the old leader's key disappears (its lease expired), the other manager takes it.
        await old.leader._lease.revoke()  # type: ignore[attr-defined]

        async def took_over() -> bool:
            return new.leader.is_leader

        await wait_for(took_over, timeout=15)
        await new.core.scheduler.epoch()  # the new leader claims its (higher) epoch

        await new.core.scheduler.stop()  # so the session below waits for a pass we run by hand
        client = cluster.client(manager=new)
        session = await client.create_session(resources={"cpu": "1", "mem": "128m"})
        with pytest.raises(LostLeadership):
            await old.core.scheduler.run_pass()
        assert (await client.get_session(session.id)).status == "PENDING"
        assert await new.core.scheduler.run_pass() == 1  # the real leader places it
        assert (await client.get_session(session.id)).status in ("SCHEDULED", "PREPARING", "RUNNING")
    finally:
        await cluster.stop()
