"""A backend with no containers, for simulating many agents at scale.

Kernels "run" instantly; execute is answered by the agent with a fixed reply.
Never use it for real work: nothing is isolated or even executed.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, AsyncIterator

from ..kernel_spec import KernelSpec
from .base import ExistingKernel, ExitCallback, ProgressCallback


class DummyBackend:
    has_runner = False

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self._ids = itertools.count(1)
        self._running: set[str] = set()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def available(self) -> bool:
        return True

    async def start_kernel(self, spec: KernelSpec, kernel_dir: Path, progress: ProgressCallback | None = None) -> str:
        container_id = f"dummy-{self.agent_id}-{next(self._ids)}"
        self._running.add(container_id)
        return container_id

    async def stop_kernel(self, container_id: str, grace_s: int = 3) -> tuple[int | None, str]:
        self._running.discard(container_id)
        return 0, ""

    async def is_running(self, container_id: str) -> bool:
        return container_id in self._running

    async def logs(self, container_id: str) -> str:
        return ""

    async def follow_logs(self, container_id: str, tail: str = "all") -> AsyncIterator[str]:
        return  # no containers, no output
        yield ""  # pragma: no cover - makes this an async generator

    def take_exit_note(self, container_id: str) -> str | None:
        return None

    async def existing_kernels(self) -> list[ExistingKernel]:
        return []

    async def list_images(self) -> list[dict[str, Any]]:
        return []

    def watch_exits(self, callback: ExitCallback) -> None:
        return None
