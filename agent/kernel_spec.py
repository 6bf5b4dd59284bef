"""What the manager asks an agent to run, and what the agent keeps per kernel."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from corral.common.cluster import ClusterSpec
from corral.common.node_resources import Allocation


class VfolderMount(BaseModel):
    """A vfolder to bind-mount: the manager resolved the host path through the storage proxy."""

    model_config = ConfigDict(extra="ignore")

    name: str
    host_path: str
    container_path: str
    read_only: bool = False

    def bind(self) -> str:
        return f"{self.host_path}:{self.container_path}:{'ro' if self.read_only else 'rw'}"


class KernelSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kernel_id: str
    session_id: str
    session_name: str = ""
    owner_id: str = ""
    cluster_idx: int = 0
    type: str = "interactive"
    image: str
    command: list[str] | None = None
    env: dict[str, str] = {}
    allocation: dict[str, Any]
    mounts: list[VfolderMount] = []
    # The owner's public keys, for the session's sshd (replaced later through the RPC when they change).
    ssh_authorized_keys: list[str] = []
    # A kernel of a session whose cluster_size is above 1: its peers, network mode and session key.
    # None (or absent) for an ordinary session.
    cluster: ClusterSpec | None = None

    @property
    def resources(self) -> Allocation:
        return Allocation.from_json(self.allocation)


@dataclass
class KernelRecord:
    kernel_id: str
    session_id: str
    kernel_dir: Path
    allocation: Allocation
    status: str = "preparing"  # preparing | running | terminating
    container_id: str | None = None
    ssh_host_key: str = ""  # the public half of the kernel's own host key ("" for a simulated kernel)
    ssh_user: str = ""  # who the session's processes run as (the login name for ssh)
    # The Docker create+start call while it runs: a destroy that arrives meanwhile
    # waits for it, so it learns the container id instead of leaving a stray.
    creating: "asyncio.Future[str] | None" = field(default=None, compare=False, repr=False)

    def report(self) -> dict[str, Any]:
        return {
            "kernel_id": self.kernel_id,
            "session_id": self.session_id,
            "status": self.status,
            "container_id": self.container_id,
        }
