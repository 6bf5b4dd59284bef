"""Resource policies held at placement time and the queue view, on a real manager and agent."""
from __future__ import annotations

import asyncio

import pytest

from .cluster import LiveCluster

pytestmark = [pytest.mark.docker]


async def _reason(client, session_id: str, prefix: str, timeout: float = 20.0) -> str:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        sess = await client.get_session(session_id)
        if sess.status_reason.startswith(prefix) or asyncio.get_running_loop().time() > deadline:
            return sess.status_reason
        await asyncio.sleep(0.2)


async def test_a_session_over_its_users_quota_waits_with_the_limit_named_then_starts(cluster: LiveCluster) -> None:
    admin = cluster.client()
    bob = cluster.client(*await cluster.add_user("bob"))
    await admin.create_resource_policy("one-at-a-time", max_concurrent_sessions=1)
    await admin.update_user("bob", resource_policy="one-at-a-time")
    first = await bob.create_session(name="first", resources={"cpu": "0.5"})
    await bob.wait_for_status(first.id, {"RUNNING"}, timeout=60)
    second = await bob.create_session(name="second", resources={"cpu": "0.5"})
    reason = await _reason(bob, second.id, "user quota")
    assert reason == "user quota: 1 of 1 sessions running"
    assert (await bob.get_session(second.id)).status == "PENDING"

    groups = await bob.queue()
    assert [g.group for g in groups] == ["default"]
    entry = groups[0].entries[0]
    assert (entry.session_id, entry.position, entry.owner) == (second.id, 1, "bob")
    assert entry.reason == reason and entry.would_start_on is None
    assert (await bob.queue("default"))[0].entries[0].session_id == second.id

    await bob.destroy_session(first.id)
    await bob.wait_for_status(second.id, {"RUNNING"}, timeout=60)
    assert await bob.queue() == []
    await bob.destroy_session(second.id)


async def test_admins_are_held_to_nothing_unless_given_a_policy(cluster: LiveCluster) -> None:
    admin = cluster.client()
    sessions = [await admin.create_session(name=f"a{i}", resources={"cpu": "0.25"}) for i in range(2)]
    for sess in sessions:
        await admin.wait_for_status(sess.id, {"RUNNING"}, timeout=60)
    for sess in sessions:
        await admin.destroy_session(sess.id)
