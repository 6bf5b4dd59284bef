"""Create, then destroy at once, many at a time, on the real stack (Docker, SQLite and PostgreSQL).

What must hold (the field report this guards against: sessions whose DELETE said
CANCELLED went on to run, and containers nobody owned stayed up):
- a DELETE that answers CANCELLED means the session never left PENDING;
- a DELETE that answers TERMINATING means it ends TERMINATED;
- nothing is left running once everything has settled.
"""
from __future__ import annotations

import asyncio

import aiodocker
import pytest

from .cluster import LiveCluster, wait_for

pytestmark = [pytest.mark.docker]

PAIRS = 24
AT_ONCE = 8


async def test_destroy_right_after_create_answers_the_real_outcome(cluster: LiveCluster) -> None:
    client = cluster.client()
    gate = asyncio.Semaphore(AT_ONCE)

    async def pair(i: int) -> tuple[str, str]:
        async with gate:
            session = await client.create_session(name=f"race-{i}", resources={"cpu": "0.1", "mem": "64m"})
            if i % 3:
                await asyncio.sleep(0.05 * (i % 5))  # some land while placed or starting, not only while queued
            answer = await client.destroy_session(session.id)
            return session.id, answer.status

    answers = await asyncio.gather(*(pair(i) for i in range(PAIRS)))
    for session_id, answered in answers:
        assert answered in ("CANCELLED", "TERMINATING"), answered
        final = await client.wait_for_status(session_id, {"CANCELLED", "TERMINATED", "ERROR"}, timeout=90)
        history = [h["status"] for h in (await client.get_session(session_id)).raw["status_history"]]
        if answered == "CANCELLED":
            assert history == ["PENDING", "CANCELLED"], history
        else:
            assert final.status == "TERMINATED", (final.status, final.raw["status_reason"])
            assert history[-2:] == ["TERMINATING", "TERMINATED"], history

    agent_id = cluster.agents[0].agent_id

    async def nothing_left() -> bool:
        async with aiodocker.Docker() as docker:
            found = await docker.containers.list(
                filters=f'{{"label": ["ai.corral.agent-id={agent_id}"], "status": ["running", "created"]}}'
            )
        return not found

    await wait_for(nothing_left, timeout=60)
    agents = await client.list_agents()
    occupied = [a.raw["occupied_slots"] for a in agents if a.id == agent_id][0]
    assert all(float(v) == 0 for v in occupied.values()), occupied
