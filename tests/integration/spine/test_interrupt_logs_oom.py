"""Interrupting running code, container output in `logs` (and `logs?follow=1`), OOM kills explained: real containers."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from corral.client.api import AsyncCorralClient

from .cluster import LiveCluster, wait_for

pytestmark = [pytest.mark.docker]

SLEEPER = (
    "import time\ntry:\n    print('started', flush=True)\n    time.sleep(60)\n"
    "except KeyboardInterrupt:\n    print('cleaning up', flush=True)\n    raise\n"
)


def _until(condition: Any) -> Any:
    async def check() -> Any:
        return condition() or None

    return check


async def _running(client: AsyncCorralClient, **options: Any) -> str:
    session = await client.create_session(**{"resources": {"cpu": "1", "mem": "256m"}, **options})
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
    return session.id


async def test_interrupt_stops_the_running_code_and_the_next_exec_runs_at_once(cluster: LiveCluster) -> None:
    client = cluster.client()
    ref = await _running(client, name="intr")
    assert (await client.execute_collect(ref, "kept = 42")).status == "ok"
    assert await client.interrupt(ref) is False  # idle: nothing to interrupt
    events: list[dict[str, Any]] = []

    async def run() -> None:
        async for event in client.execute(ref, SLEEPER):
            events.append(event)

    task = asyncio.create_task(run())
    # Output comes as the interpreter writes it: "started" and "\n" may be two events.
    await wait_for(_until(lambda: "started\n" in "".join(e.get("data", "") for e in events)), timeout=20)
    assert await client.interrupt("intr") is True
    await asyncio.wait_for(task, 10)
    assert events[-1]["op"] == "result" and events[-1]["status"] == "interrupted"
    assert "cleaning up\n" in "".join(e.get("data", "") for e in events)
    result = await asyncio.wait_for(client.execute_collect(ref, "print(kept)"), 10)  # nothing waits behind it
    assert (result.status, result.stdout) == ("ok", "42\n")


async def test_logs_hold_the_executed_codes_output_and_follow_streams_it(cluster: LiveCluster) -> None:
    client = cluster.client()
    ref = await _running(client)
    assert await client.logs(ref) == ""
    await client.execute_collect(ref, "import sys\nprint('to-out')\nprint('to-err', file=sys.stderr)")

    async def logged() -> str | None:
        text = await client.logs(ref)
        return text if "to-err" in text else None

    text = await wait_for(logged, timeout=10)
    assert "to-out\n" in text and "to-err\n" in text

    followed: list[str] = []

    async def follow() -> None:
        async for chunk in client.follow_logs(ref):
            followed.append(chunk)

    task = asyncio.create_task(follow())
    await wait_for(_until(lambda: "to-out" in "".join(followed)), timeout=10)  # what came before, first
    await client.execute_collect(ref, "print('later-line')")
    await wait_for(_until(lambda: "later-line" in "".join(followed)), timeout=10)
    await client.destroy_session(ref)
    await asyncio.wait_for(task, 30)  # the stream ends with the session
    assert "".join(followed).endswith("later-line\n")


async def test_code_killed_for_memory_says_so(cluster: LiveCluster) -> None:
    client = cluster.client()
    ref = await _running(client, resources={"cpu": "1", "mem": "64m"})
    result = await client.execute_collect(ref, "x = b'x' * (200 << 20)")
    assert result.status == "error"
    assert "killed: out of memory (limit 64 MiB)" in (result.error or ""), result.error
    assert (await client.execute_collect(ref, "print('alive')")).stdout == "alive\n"  # a fresh interpreter


async def test_batch_command_killed_for_memory_says_so(cluster: LiveCluster) -> None:
    client = cluster.client()
    session = await client.create_session(
        type="batch", command=["python3", "-c", "x = b'x' * (200 << 20)"], resources={"cpu": "1", "mem": "64m"},
    )
    ended = await client.wait_for_status(session.id, {"TERMINATED", "ERROR"}, timeout=60)
    kernel = ended.raw["kernels"][0]
    assert kernel["exit_code"] == 137
    assert kernel["status_reason"] == "killed: out of memory (limit 64 MiB)"
    assert ended.status_reason == "batch command killed: out of memory (limit 64 MiB) (exit code 137)"
