"""A session from creation to a real container and back, on SQLite and PostgreSQL."""
from __future__ import annotations

import aiodocker
import pytest

from corral.common.errors import NotFound

from .cluster import LiveCluster

pytestmark = [pytest.mark.docker]


async def test_interactive_session_runs_code_and_is_destroyed(cluster: LiveCluster) -> None:
    client = cluster.client()
    session = await client.create_session(resources={"cpu": "1", "mem": "256m"}, name="life")
    assert session.status == "PENDING"
    running = await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
    assert running.status == "RUNNING"

    result = await client.execute_collect(session.id, "x = 21\nprint('hello', flush=True)")
    assert result.exit_code == 0 and result.stdout == "hello\n"
    # Query mode keeps one interpreter per session.
    result = await client.execute_collect(session.id, "print(x * 2)")
    assert result.stdout == "42\n"
    result = await client.execute_collect(session.id, "import sys\nprint('oops', file=sys.stderr)\nraise ValueError('bad')")
    assert result.exit_code != 0 and "oops" in result.stderr and "ValueError: bad" in (result.error or "")

    info = (await client.get_session("life")).raw
    container_id = info["kernels"][0]["container_id"]
    assert info["agent_id"] == cluster.agents[0].agent_id
    assert info["kernels"][0]["allocation"]["cpu"] == "1"

    await client.destroy_session(session.id)
    ended = await client.wait_for_status(session.id, {"TERMINATED"}, timeout=30)
    history = [(h["status"], h["reason"]) for h in ended.raw["status_history"]]
    assert [s for s, _ in history] == ["PENDING", "SCHEDULED", "PREPARING", "RUNNING", "TERMINATING", "TERMINATED"]
    assert all(reason for _, reason in history)
    async with aiodocker.Docker() as docker:
        with pytest.raises(aiodocker.DockerError):
            await docker.containers.container(container_id).show()
    assert (await client.destroy_session(session.id)).status == "TERMINATED"  # DELETE is idempotent


async def test_container_is_confined_and_labelled(cluster: LiveCluster) -> None:
    client = cluster.client()
    session = await client.create_session(resources={"cpu": "1.5", "mem": "300m"})
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
    info = (await client.get_session(session.id)).raw
    async with aiodocker.Docker() as docker:
        details = await docker.containers.container(info["kernels"][0]["container_id"]).show()
    host = details["HostConfig"]
    assert host["NanoCpus"] == 1_500_000_000
    assert host["Memory"] == 300 * 2**20
    assert host["PidsLimit"] and host["PidsLimit"] > 0
    assert host["Privileged"] is False
    labels = details["Config"]["Labels"]
    assert labels["ai.corral.session-id"] == session.id
    assert labels["ai.corral.kernel-id"] == info["kernels"][0]["id"]
    assert labels["ai.corral.agent-id"] == cluster.agents[0].agent_id
    mounts = {m["Destination"]: m for m in details["Mounts"]}
    assert mounts["/opt/corral"]["RW"] is False
    assert not any("docker.sock" in m["Source"] for m in details["Mounts"])
    assert details["NetworkSettings"]["Ports"] in ({}, None)
    # The session sees its own limits.
    result = await client.execute_collect(session.id, "import os; print(os.environ['CORRAL_CPU'], os.getuid())")
    assert result.stdout.split() == ["1.5", "1000"]
    await client.destroy_session(session.id)


async def test_batch_session_ends_with_its_exit_code(cluster: LiveCluster) -> None:
    client = cluster.client()
    ok = await client.create_session(type="batch", command="echo batch-out; exit 0", resources={"mem": "128m"})
    bad = await client.create_session(type="batch", command=["python3", "-c", "import sys; print('x'); sys.exit(3)"],
                                      resources={"mem": "128m"})
    ok_done = await client.wait_for_status(ok.id, {"TERMINATED", "ERROR"}, timeout=60)
    bad_done = await client.wait_for_status(bad.id, {"TERMINATED", "ERROR"}, timeout=60)
    assert ok_done.status == "TERMINATED" and ok_done.raw["exit_code"] == 0
    assert bad_done.status == "TERMINATED" and bad_done.raw["exit_code"] == 3
    assert "exit code 3" in bad_done.raw["status_reason"]
    assert "batch-out" in await client.logs(ok.id)


async def test_unknown_image_ends_in_error_with_reason(cluster: LiveCluster) -> None:
    client = cluster.client()
    session = await client.create_session(image="corral/does-not-exist:1", resources={"mem": "128m"})
    ended = await client.wait_for_status(session.id, {"ERROR", "RUNNING"}, timeout=60)
    assert ended.status == "ERROR"
    assert "corral/does-not-exist:1" in ended.raw["status_reason"]


async def test_other_users_sessions_are_invisible(cluster: LiveCluster) -> None:
    admin = cluster.client()
    mine = await admin.create_session(resources={"mem": "128m"}, name="private")
    access, secret = await cluster.add_user("alice")
    alice = cluster.client(access, secret)
    with pytest.raises(NotFound):
        await alice.get_session(mine.id)
    with pytest.raises(NotFound):
        await alice.destroy_session("private")
    assert [s.id for s in (await alice.list_sessions()).items] == []
    await admin.destroy_session(mine.id)


async def test_events_stream_replays_history_then_follows(cluster: LiveCluster) -> None:
    client = cluster.client()
    session = await client.create_session(type="batch", command="sleep 0.5", resources={"mem": "128m"})
    seen = [change.status async for change in client.watch_session(session.id)]
    assert seen[0] == "PENDING" and seen[-1] == "TERMINATED"
    assert "RUNNING" in seen


async def test_destroying_a_starting_session_leaves_no_container(cluster: LiveCluster) -> None:
    client = cluster.client()
    for _ in range(3):
        session = await client.create_session(resources={"mem": "128m"})
        await client.wait_for_status(session.id, {"PREPARING", "RUNNING"}, timeout=60)
        await client.destroy_session(session.id)
        await client.wait_for_status(session.id, {"TERMINATED", "CANCELLED", "ERROR"}, timeout=60)
    agent_id = cluster.agents[0].agent_id

    async def no_containers() -> bool:
        async with aiodocker.Docker() as docker:
            found = await docker.containers.list(all=True, filters=f'{{"label": ["ai.corral.agent-id={agent_id}"]}}')
        return not found

    from .cluster import wait_for

    await wait_for(no_containers, timeout=20)
