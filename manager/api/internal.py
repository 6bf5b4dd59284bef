"""Agent-facing endpoints (cluster secret): heartbeats and kernel events."""
from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from ..agent_registry import Heartbeat
from ..auth import check_cluster_secret
from ..kernel_events import mark_kernel_ended, mark_kernel_running, note_kernel_progress
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


class KernelEventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[KernelEvent]


def _authorize(request: web.Request) -> None:
    check_cluster_secret(request, ctx_of(request).config.agents.cluster_secret)


async def agent_heartbeat(request: web.Request) -> web.Response:
    _authorize(request)
    hb = await parse_body(request, Heartbeat)
    return web.json_response(await registry_of(request).heartbeat(hb))


async def kernel_events(request: web.Request) -> web.Response:
    _authorize(request)
    batch = await parse_body(request, KernelEventBatch)
    ctx = ctx_of(request)
    for event in batch.events:
        if event.kind == "kernel.running":
            await mark_kernel_running(ctx, event.kernel_id, event.container_id)
        elif event.kind == "kernel.progress":
            await note_kernel_progress(ctx, event.kernel_id, event.reason)
        else:
            await mark_kernel_ended(
                ctx, event.kernel_id, event.exit_code, event.reason or event.kind, event.logs,
                failed=event.kind == "kernel.failed",
            )
    return web.json_response({"accepted": len(batch.events)})
