"""Admins and other users' sessions, idempotent destroy, why a session waits, and clear
refusals: a real manager and agent with Docker."""
from __future__ import annotations

import pytest

from corral.client import InvalidRequest, NotFound, PermissionDenied, WaitTimeout
from corral.client import api as client_api
from corral.client.models import StatusChange

from .cluster import LiveCluster

pytestmark = [pytest.mark.docker]


async def test_admin_lists_every_users_sessions_and_names_them_owner_slash_name(cluster: LiveCluster) -> None:
    admin = cluster.client()
    bob = cluster.client(*await cluster.add_user("bob"))
    await admin.create_resource_group("nowhere")  # no agent there
    theirs = await bob.create_session(name="nb", resource_group="nowhere")  # stays PENDING
    mine = await admin.create_session(name="nb", resource_group="nowhere")

    with pytest.raises(PermissionDenied, match="only admins"):
        await bob.list_sessions(all_users=True)
    assert [s.id for s in (await bob.list_sessions()).items] == [theirs.id]
    everyone = (await admin.list_sessions(all_users=True)).items
    assert {(s.owner, s.id) for s in everyone} == {("bob", theirs.id), ("admin", mine.id)}
    assert [s.id for s in (await admin.list_sessions()).items] == [mine.id]

    assert (await admin.get_session("nb")).id == mine.id  # a plain name: the admin's own first
    assert (await admin.get_session("bob/nb")).id == theirs.id
    with pytest.raises(NotFound, match="no user 'carol'"):
        await admin.get_session("carol/nb")
    with pytest.raises(NotFound):
        await bob.get_session("admin/nb")  # only admins reach others' sessions
    cancelled = await admin.destroy_session("bob/nb")
    assert cancelled.id == theirs.id and cancelled.status == "CANCELLED"
    assert (await bob.get_session("nb")).status == "CANCELLED"

    # Idempotent: destroying what has ended answers its final state.
    again = await admin.destroy_session(theirs.id)
    assert again.status == "CANCELLED"
    await admin.destroy_session(mine.id)


async def test_a_wait_says_why_the_session_is_queued(
    cluster: LiveCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_api, "PENDING_REASON_POLL_S", 0.2)
    client = cluster.client()
    await client.create_resource_group("elsewhere")  # no agent there
    session = await client.create_session(name="queued", resource_group="elsewhere")
    seen: list[StatusChange] = []
    with pytest.raises(WaitTimeout) as caught:
        await client.wait_for_status(session.id, {"RUNNING"}, timeout=3, on_progress=seen.append)
    reasons = [c.reason for c in seen if c.is_progress]
    assert reasons and reasons[0].startswith("waiting for resources: no agent in group 'elsewhere'")
    assert f"(last status: PENDING: {reasons[-1]})" in str(caught.value)
    assert (await client.get_session(session.id)).status == "PENDING"  # left queued
    await client.destroy_session(session.id)


async def test_destroying_an_ended_session_twice_is_fine_and_a_shell_line_runs(cluster: LiveCluster) -> None:
    client = cluster.client()
    job = await client.create_session(type="batch", command="echo hi && exit 4", resources={"cpu": "1", "mem": "128m"})
    ended = await client.wait_for_status(job.id, {"TERMINATED", "ERROR"}, timeout=60)
    assert ended.exit_code == 4, ended.status_reason
    assert "hi" in await client.logs(job.id)
    for _ in range(2):
        assert (await client.destroy_session(job.id)).status == ended.status


async def test_near_miss_resource_names_are_refused_with_the_right_name(cluster: LiveCluster) -> None:
    client = cluster.client()
    for given, meant in (("gpu", "cuda.device"), ("gpus", "cuda.device"), ("cpus", "'cpu'"), ("memory", "'mem'")):
        with pytest.raises(InvalidRequest, match=f"unknown resource '{given}'.*did you mean .*{meant}"):
            await client.create_session(resources={given: "1"})
