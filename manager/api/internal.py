"""Agent-facing endpoints (cluster secret): heartbeats and kernel events."""
from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ..agent_registry import Heartbeat
from ..auth import check_cluster_secret
from ..lifecycle.kernel_events import ON_AGENT
from .context_access import ctx_of, registry_of
from corral.common.request_body import parse_body


class KernelEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["kernel.running", "kernel.progress", "kernel.failed", "kernel.terminated"]
    kernel_id: str
    container_id: str | None = None
    exit_code: int | None = None
    reason: str = ""
    logs: str | None = None
    ssh_host_key: str | None = Field(default=None, max_length=16384)  # kernel.running: its sshd's public key
    ssh_user: str | None = Field(default=None, max_length=64)  # kernel.running: who the session runs as


class KernelEventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The reporting agent; a report about a kernel that has been placed elsewhere since is ignored.
    agent_id: str | None = None
    events: list[KernelEvent]


def _authorize(request: web.Request) -> None:
    check_cluster_secret(request, ctx_of(request).cluster_secret)


async def agent_heartbeat(request: web.Request) -> web.Response:
    _authorize(request)
    hb = await parse_body(request, Heartbeat)
    return web.json_response(await registry_of(request).heartbeat(hb))


async def kernel_events(request: web.Request) -> web.Response:
    _authorize(request)
    batch = await parse_body(request, KernelEventBatch)
    kernel_events = ctx_of(request).kernel_events
    unwanted: list[str] = []
    for event in batch.events:
        if event.kind == "kernel.running":
            if not await kernel_events.running(
                event.kernel_id, event.container_id, agent_id=batch.agent_id,
                ssh_host_key=event.ssh_host_key, ssh_user=event.ssh_user,
            ):
                unwanted.append(event.kernel_id)
        elif event.kind == "kernel.progress":
            await kernel_events.progress(event.kernel_id, event.reason)
        else:
            await kernel_events.ended(
                event.kernel_id, event.exit_code, event.reason or event.kind, event.logs,
                failed=event.kind == "kernel.failed", agent_id=batch.agent_id, only_from=ON_AGENT,
            )
    # ``destroy``: kernels that came up although nobody wants them any more (destroyed meanwhile).
    return web.json_response({"accepted": len(batch.events), "destroy": unwanted})
