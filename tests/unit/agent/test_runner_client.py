"""The agent's side of the runner protocol, against the real runner run on the host."""
from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.agent import runner_client
from corral.common.errors import BackendError
from corral.kernels import contract
from tests.unit.kernels.runner_process import RunnerProcess


@pytest.fixture
async def runner() -> AsyncIterator[RunnerProcess]:
    process = await RunnerProcess.start()
    try:
        yield process
    finally:
        await process.stop()


async def collect(socket_path: Path, code: str) -> list[dict]:
    return [event async for event in runner_client.execute_events(socket_path, code)]


def stdout_of(events: list[dict]) -> str:
    return "".join(e["data"] for e in events if e["op"] == "output" and e["stream"] == "stdout")


async def test_ready_then_execute_events_carry_no_request_ids(runner: RunnerProcess) -> None:
    await runner_client.wait_until_ready(runner.socket_path, 10)
    events = await collect(runner.socket_path, "print(1+1)")
    assert all("id" not in event for event in events)
    assert stdout_of(events) == "2\n"
    assert events[-1] == {"op": "result", "status": "ok", "exit_code": 0, "error": None}


async def test_execute_events_end_with_a_result_when_the_runner_goes_away(runner: RunnerProcess) -> None:
    await runner_client.wait_until_ready(runner.socket_path, 10)
    events = runner_client.execute_events(runner.socket_path, "import time\nprint('up', flush=True)\ntime.sleep(30)")
    seen = ""
    while seen != "up\n":
        seen += (await anext(events))["data"]
    runner.process.kill()
    rest = [event async for event in events]
    assert rest == [{"op": "result", "status": "error", "exit_code": 1, "error": "the kernel's runner went away"}]


async def test_execute_events_without_a_runner_is_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="cannot reach the kernel's runner"):
        await collect(contract.runner_socket_path(tmp_path), "1")


async def test_a_dead_container_ends_the_wait_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_client, "LIVENESS_CHECK_EVERY_S", 0.2)

    async def dead() -> bool:
        return False

    started = time.monotonic()
    with pytest.raises(runner_client.ContainerExitedEarly):
        await runner_client.wait_until_ready(contract.runner_socket_path(tmp_path), 30, dead)
    assert time.monotonic() - started < 1


async def test_an_exit_event_ends_the_wait_without_asking_the_engine(tmp_path: Path) -> None:
    exited = asyncio.Event()
    asked: list[bool] = []

    async def alive() -> bool:
        asked.append(True)
        return True

    asyncio.get_running_loop().call_later(0.3, exited.set)
    started = time.monotonic()
    with pytest.raises(runner_client.ContainerExitedEarly):
        await runner_client.wait_until_ready(contract.runner_socket_path(tmp_path), 30, alive, exited)
    assert time.monotonic() - started < 0.3 + runner_client.SLOW_POLL_S + 0.2
    assert asked == []


async def test_no_runner_times_out(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="did not come up"):
        await runner_client.wait_until_ready(contract.runner_socket_path(tmp_path), 0.2)


async def test_a_socket_path_longer_than_unix_allows_is_reached_through_its_directory(
    runner: RunnerProcess,
) -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as parent:
        long_dir = Path(parent) / ("d" * 120)
        long_dir.symlink_to(runner.directory)
        socket_path = contract.runner_socket_path(long_dir)
        assert len(str(socket_path)) > 108
        await runner_client.wait_until_ready(socket_path, 10)
        assert stdout_of(await collect(socket_path, "print('far')")) == "far\n"
