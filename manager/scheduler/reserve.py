"""Reserve stage: take the chosen node's resources for a session, in one transaction."""
from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Session
from ..events import EventHub
from ..kernel_events import recalc_occupied
from ..states import SessionStatus
from ..status_recorder import record_status, utcnow
from .filter import Candidate


def allocation_record(candidate: Candidate) -> dict[str, Any]:
    """The allocation as stored on the kernel, shown to users and sent to the agent.

    Besides the bookkeeping fields of `Allocation`, GPU kernels get
    ``gpus``: per device its index, UUID, model, share and memory limit
    (share × device memory, bytes), taken from the node's topology now, so
    `session info` shows what the kernel holds even after the agent is gone.
    """
    record = candidate.allocation.to_json()
    gpus = candidate.node.state.gpus
    if gpus is not None and candidate.allocation.gpu_shares:
        record["gpus"] = gpus.describe(candidate.allocation.gpu_shares)
    return record


async def reserve(db: AsyncSession, hub: EventHub, sess: Session, candidate: Candidate) -> None:
    """Bind the session's kernel to the node and record its allocation; caller commits."""
    now = utcnow()
    for kernel in sess.kernels:
        kernel.agent_id = candidate.node.agent_id
        kernel.allocation = allocation_record(candidate)
        kernel.status = SessionStatus.SCHEDULED
        kernel.status_changed_at = now
    record_status(db, hub, sess, SessionStatus.SCHEDULED, f"placed on agent {candidate.node.agent_id}")
    await db.flush()
    await recalc_occupied(db, candidate.node.agent_id)
    candidate.node.state.add(candidate.allocation)
