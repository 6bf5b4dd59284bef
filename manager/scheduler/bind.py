"""Bind stage: ask the chosen agent to start the kernel."""
from __future__ import annotations

import logging
from typing import Any

from ..context import ManagerContext
from ..db.models import Kernel, Session
from ..kernel_events import mark_kernel_ended
from ..states import SessionStatus
from ..status_recorder import record_status, utcnow

log = logging.getLogger(__name__)


def kernel_spec(sess: Session, kernel: Kernel) -> dict[str, Any]:
    return {
        "kernel_id": kernel.id,
        "session_id": sess.id,
        "session_name": sess.name,
        "owner_id": sess.owner_id,
        "cluster_idx": kernel.cluster_idx,
        "type": sess.type,
        "image": sess.image,
        "command": sess.command,
        "env": sess.env,
        "allocation": kernel.allocation,
        "mounts": [
            {k: m[k] for k in ("name", "host_path", "container_path", "read_only")}
            for m in sess.mounts or []
            if isinstance(m, dict) and m.get("host_path")
        ],
    }


async def bind(ctx: ManagerContext, session_id: str, address: str) -> None:
    async with ctx.sessionmaker() as db:
        sess = await db.get(Session, session_id)
        if sess is None or sess.status != SessionStatus.SCHEDULED:
            return
        specs = [kernel_spec(sess, k) for k in sess.kernels]
        record_status(db, ctx.hub, sess, SessionStatus.PREPARING, "agent is creating the container")
        for kernel in sess.kernels:
            kernel.status = SessionStatus.PREPARING
            kernel.status_changed_at = utcnow()
        await db.commit()
    for spec in specs:
        try:
            await ctx.agent_client.create_kernel(address, spec)
        except Exception as exc:  # noqa: BLE001 - any failure ends this kernel with its reason
            log.warning("agent %s refused kernel %s: %s", address, spec["kernel_id"], exc)
            await mark_kernel_ended(ctx, spec["kernel_id"], None, f"could not start: {exc}", None, failed=True)
