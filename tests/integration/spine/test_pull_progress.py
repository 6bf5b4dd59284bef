"""Image pull progress from agent to client, with the registry replaced by recorded pull lines."""
from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any, AsyncIterator

import aiodocker
import pytest

from corral.client.models import StatusChange

from .cluster import BASE_IMAGE, LiveCluster, wait_for

pytestmark = [pytest.mark.docker]

MB = 1_000_000


def _recorded_pull(repo: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = [
        {"status": f"Pulling from {repo.split('/', 1)[1]}", "id": "1"},
        {"status": "Already exists", "progressDetail": {}, "id": "aaa111"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "bbb222"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "ccc333"},
    ]
    for step in range(1, 11):
        lines.append({"status": "Downloading", "progressDetail": {"current": step * 20 * MB, "total": 200 * MB},
                      "id": "bbb222"})
        lines.append({"status": "Downloading", "progressDetail": {"current": step * 5 * MB, "total": 50 * MB},
                      "id": "ccc333"})
    for layer in ("bbb222", "ccc333"):
        lines += [
            {"status": "Download complete", "progressDetail": {}, "id": layer},
            {"status": "Extracting", "progressDetail": {"current": 1 * MB, "total": 50 * MB}, "id": layer},
            {"status": "Pull complete", "progressDetail": {}, "id": layer},
        ]
    lines += [{"status": "Digest: sha256:" + "ef" * 32}, {"status": f"Status: Downloaded newer image for {repo}:1"}]
    return lines


async def test_pull_progress_reaches_the_event_stream_without_history_rows(cluster: LiveCluster) -> None:
    repo = f"registry.example/corral-test/pulled-{cluster.run_id}"
    image = f"{repo}:1"
    agent = await cluster.start_agent("puller", resources={"cpu_count": 64}, docker={"image_pull": "missing"})
    backend: Any = agent.backend
    pulled: list[str] = []
    release = asyncio.Event()
    test_over = False

    async def fake_pull(name: str) -> AsyncIterator[dict[str, Any]]:
        pulled.append(name)
        lines = _recorded_pull(repo)
        for index, line in enumerate(lines):
            yield line
            await asyncio.sleep(0.08)
            if index == len(lines) // 2:
                await asyncio.wait_for(release.wait(), 30)  # hold mid-pull until the test has looked
        if not test_over:  # what a real pull leaves behind: the image under its name
            await backend.docker.images.tag(BASE_IMAGE, repo, tag="1")

    backend._pull_stream = fake_pull  # this agent instance only
    client = cluster.client()
    watcher = cluster.client()
    try:
        session = await client.create_session(image=image, resources={"cpu": "33", "mem": "128m"})
        seen: list[StatusChange] = []

        async def watch() -> None:
            async with aclosing(watcher.watch_session(session.id, progress=True)) as changes:
                async for change in changes:
                    seen.append(change)
                    if change.status == "RUNNING" and not change.is_progress:
                        return

        watching = asyncio.create_task(watch())

        async def pulling_reason() -> Any:
            info = await client.get_session(session.id)
            reason = info.status_reason or ""
            return info if reason.startswith(f"pulling {image} — ") and "/3 layers, " in reason else None

        during = await wait_for(pulling_reason, timeout=60)  # the pull is held halfway meanwhile
        assert during.status in ("SCHEDULED", "PREPARING")
        release.set()

        await asyncio.wait_for(watching, 60)
        running = await client.get_session(session.id)
        assert running.status == "RUNNING", running.status_reason
        assert running.agent_id == agent.agent_id and pulled == [image]

        progress = [c for c in seen if c.is_progress]
        assert len(progress) >= 2, seen
        assert all(c.status in ("SCHEDULED", "PREPARING") and c.session_id == session.id for c in progress)
        assert progress[0].reason and progress[0].reason.startswith(f"pulling {image}")
        assert progress[-1].reason == f"pulled {image} — 3 layers, 250 MB"  # the throttle lets the last one out
        # Progress is ephemeral: the history holds exactly the status changes the stream sent.
        statuses = [c.status for c in seen if not c.is_progress]
        assert [c.status for c in running.status_history] == statuses
        assert len(statuses) == len(set(statuses))
        assert not any((c.reason or "").startswith(("pulling", "pulled")) for c in running.status_history)
        await client.destroy_session(session.id)
        await client.wait_for_status(session.id, {"TERMINATED"}, timeout=30)
    finally:
        test_over = True  # a pull still under way (the test failed) must not leave a tag behind
        release.set()
        async with aiodocker.Docker() as docker:
            try:
                await docker.images.delete(image)
            except aiodocker.DockerError:
                pass
