"""A container that dies before its runner answers is settled from the engine's exit
event, without waiting for (or asking) the engine's state."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from corral.agent.kernel_spec import KernelSpec
from corral.agent.kernels import KernelManager
from corral.common.node_resources import NodeCapacity


class RecordingLink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send_event(self, kind: str, kernel_id: str, **fields: Any) -> None:
        self.events.append({"kind": kind, "kernel_id": kernel_id, **fields})


class SilentContainerBackend:
    """Containers whose runner never binds its socket; the engine always says "running"."""

    has_runner = True

    def __init__(self) -> None:
        self.inspected = 0
        self.stopped: list[str] = []

    async def start_kernel(self, spec: KernelSpec, kernel_dir: Path, progress: Any = None) -> str:
        return f"c-{spec.kernel_id}"

    async def is_running(self, container_id: str) -> bool:
        self.inspected += 1
        return True

    async def stop_kernel(self, container_id: str, grace_s: int = 3) -> tuple[int | None, str]:
        self.stopped.append(container_id)
        return 3, "bye\n"


def spec(kernel_id: str, type: str) -> KernelSpec:
    return KernelSpec(kernel_id=kernel_id, session_id="s-1", type=type, image="corral/python:latest",
                      command=["true"] if type == "batch" else None, allocation={"cpu": "1", "mem": 1 << 20})


@pytest.mark.parametrize("kind", ["interactive", "batch"])
async def test_an_exit_event_while_starting_settles_the_kernel(tmp_path: Path, kind: str) -> None:
    backend, link = SilentContainerBackend(), RecordingLink()
    manager = KernelManager(tmp_path, backend, NodeCapacity((0,), 1 << 30), link)  # type: ignore[arg-type]
    await manager.create(spec("k-1", kind))
    await asyncio.sleep(0.05)  # the container "started"; its runner is not up
    await manager.on_container_exit("k-1", 3)
    await asyncio.wait_for(asyncio.gather(*manager._starting.values()), 1)
    kinds = [event["kind"] for event in link.events]
    if kind == "batch":  # it ran (too fast to be seen): a run with its exit code
        assert kinds == ["kernel.running", "kernel.terminated"]
        assert link.events[-1]["exit_code"] == 3
    else:
        assert kinds == ["kernel.failed"]
        assert "exited before its runner came up" in link.events[0]["reason"]
    assert backend.stopped == ["c-k-1"]
    assert backend.inspected == 0
    assert manager.records == {} and manager._exited_while_starting == {}
