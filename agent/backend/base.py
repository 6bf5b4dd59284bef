"""The narrow interface between the agent and whatever runs its containers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

import aiohttp

from ..kernel_spec import KernelSpec

# The Docker engine itself unreachable (socket gone, daemon down).
ENGINE_ERRORS = (aiohttp.ClientError, OSError)

LABEL_PREFIX = "ai.corral"
LABEL_MANAGED = f"{LABEL_PREFIX}.managed"
LABEL_AGENT = f"{LABEL_PREFIX}.agent-id"
LABEL_SESSION = f"{LABEL_PREFIX}.session-id"
LABEL_KERNEL = f"{LABEL_PREFIX}.kernel-id"
LABEL_KERNEL_DIR = f"{LABEL_PREFIX}.kernel-dir"
LABEL_ALLOCATION = f"{LABEL_PREFIX}.allocation"

ExitCallback = Callable[[str, int | None], Awaitable[None]]  # (kernel_id, exit code)
ProgressCallback = Callable[[str], None]  # one human line, e.g. "pulling x:1 — 3/7 layers, 412/1,830 MB"


@dataclass(frozen=True)
class ExistingKernel:
    """A container this agent made earlier, found again after a restart."""

    kernel_id: str
    session_id: str
    container_id: str
    kernel_dir: Path
    allocation: dict[str, Any]
    running: bool
    exit_code: int | None


class ContainerBackend(Protocol):
    # Whether kernels have an in-container runner to execute code through.
    has_runner: bool

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def available(self) -> bool: ...

    async def start_kernel(self, spec: KernelSpec, kernel_dir: Path, progress: ProgressCallback | None = None) -> str:
        """Create and start the container; returns its id. Raises CorralError subclasses.

        ``progress`` gets a line now and then while slow preparation (an image pull) runs;
        it must not block, and may be called often (the caller throttles)."""

    async def stop_kernel(self, container_id: str, grace_s: int = 3) -> tuple[int | None, str]:
        """Stop (SIGTERM, then SIGKILL after ``grace_s``) and remove the container; returns (exit code, last logs)."""

    async def is_running(self, container_id: str) -> bool: ...

    async def logs(self, container_id: str) -> str: ...

    # Optional (the agent falls back when a backend lacks them):
    #   def follow_logs(self, container_id: str, tail: str = "all") -> AsyncIterator[str]:
    #       the container's output, then new output live until it ends.
    #   def take_exit_note(self, container_id: str) -> str | None:
    #       why a container removed by stop_kernel had ended, when more than its exit code
    #       ("killed: out of memory (limit 512 MiB)"); asked once.

    async def existing_kernels(self) -> list[ExistingKernel]: ...

    async def list_images(self) -> list[dict[str, Any]]: ...

    def watch_exits(self, callback: ExitCallback) -> None:
        """Call ``callback`` whenever one of this agent's containers exits on its own."""
