"""What the manager does when an agent reports on a kernel."""
from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.allocator import NodeState
from corral.common.errors import CorralError
from corral.common.node_resources import Allocation, NodeCapacity
from corral.common.slots import ResourceSlot

from .context import ManagerContext
from .db.models import Agent, Kernel, Session
from .events import SessionProgressEvent
from .states import ACTIVE, TERMINAL, SessionStatus
from .status_recorder import record_status, utcnow

log = logging.getLogger(__name__)

MAX_STORED_LOG = 1 << 20


async def recalc_occupied(db: AsyncSession, agent_id: str) -> None:
    """Derive an agent's occupied slots from its live kernels (never drifts)."""
    agent = await db.get(Agent, agent_id, with_for_update=True)
    if agent is None:
        return
    allocations = (
        await db.scalars(
            select(Kernel.allocation).where(Kernel.agent_id == agent_id, Kernel.status.in_(list(ACTIVE)))
        )
    ).all()
    held = [Allocation.from_json(alloc) for alloc in allocations if alloc]
    try:
        occupied = NodeState(NodeCapacity.from_json(agent.capacity), held).occupied_slots()
    except CorralError:
        # Allocations that no longer fit the node's capacity: report the plain sum.
        occupied = sum((a.slots() for a in held), ResourceSlot())
    agent.occupied_slots = occupied.to_json()


async def mark_kernel_running(ctx: ManagerContext, kernel_id: str, container_id: str | None) -> None:
    async with ctx.sessionmaker() as db:
        kernel = await db.get(Kernel, kernel_id)
        if kernel is None or kernel.status in TERMINAL:
            return
        kernel.status = SessionStatus.RUNNING
        kernel.container_id = container_id or kernel.container_id
        kernel.status_changed_at = utcnow()
        sess = await db.get(Session, kernel.session_id)
        assert sess is not None
        if sess.status in (SessionStatus.SCHEDULED, SessionStatus.PREPARING) and all(
            k.status == SessionStatus.RUNNING for k in sess.kernels
        ):
            record_status(db, ctx.hub, sess, SessionStatus.RUNNING, f"container started on agent {kernel.agent_id}")
        await db.commit()


async def note_kernel_progress(ctx: ManagerContext, kernel_id: str, message: str) -> None:
    """A starting kernel's agent reports progress (an image pull): show it as the session's
    reason while it is SCHEDULED/PREPARING, without a status-history row, and tell listeners."""
    if not message:
        return
    starting = [SessionStatus.SCHEDULED, SessionStatus.PREPARING]
    async with ctx.sessionmaker() as db:
        kernel = await db.get(Kernel, kernel_id)
        if kernel is None or kernel.status in TERMINAL:
            return
        sess = await db.get(Session, kernel.session_id)
        if sess is None or sess.status not in starting:
            return
        status, owner_id = sess.status, sess.owner_id
        # Guarded on the status, so a transition committed meanwhile keeps its own reason.
        result = await db.execute(
            update(Session)
            .where(Session.id == sess.id, Session.status.in_(starting))
            .values(status_reason=message)
            .execution_options(synchronize_session=False)
        )
        await db.commit()
    if result.rowcount:  # type: ignore[attr-defined]
        ctx.hub.publish(SessionProgressEvent(kernel.session_id, owner_id, str(status), message, utcnow()))


async def mark_kernel_ended(
    ctx: ManagerContext,
    kernel_id: str,
    exit_code: int | None,
    reason: str,
    logs: str | None,
    *,
    failed: bool = False,
) -> None:
    """A kernel's container is gone (or never came up): free its resources and settle the session."""
    async with ctx.sessionmaker() as db:
        kernel = await db.get(Kernel, kernel_id)
        if kernel is None or kernel.status in TERMINAL:
            return
        kernel.status = SessionStatus.ERROR if failed else SessionStatus.TERMINATED
        kernel.status_reason = reason
        kernel.exit_code = exit_code
        kernel.status_changed_at = utcnow()
        if logs is not None:
            kernel.last_logs = logs[-MAX_STORED_LOG:]
        sess = await db.get(Session, kernel.session_id)
        assert sess is not None
        if sess.status not in TERMINAL and all(k.status in TERMINAL for k in sess.kernels):
            _settle_session(ctx, db, sess, kernel, exit_code, reason, failed)
        if kernel.agent_id:
            await db.flush()
            await recalc_occupied(db, kernel.agent_id)
        await db.commit()
    ctx.scheduler.trigger()  # freed resources may let a pending session in


def _settle_session(
    ctx: ManagerContext, db: AsyncSession, sess: Session, kernel: Kernel, exit_code: int | None, reason: str, failed: bool
) -> None:
    if sess.type == "batch" and exit_code is not None:
        sess.exit_code = exit_code
    if failed:
        record_status(db, ctx.hub, sess, SessionStatus.ERROR, reason)
    elif sess.status == SessionStatus.TERMINATING:
        record_status(db, ctx.hub, sess, SessionStatus.TERMINATED, reason)
    elif sess.type == "batch":
        outcome = "succeeded" if exit_code == 0 else "failed"
        record_status(db, ctx.hub, sess, SessionStatus.TERMINATED, f"batch command {outcome} with exit code {exit_code}")
    else:
        detail = f" (exit code {exit_code})" if exit_code is not None else ""
        record_status(db, ctx.hub, sess, SessionStatus.TERMINATED, f"{reason}{detail}")
    log.info("session %s ended: %s", sess.id, sess.status_reason)
