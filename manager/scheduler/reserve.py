"""Reserve stage: take the chosen node's resources for a session, in one transaction."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Session
from ..events import EventHub
from ..kernel_events import recalc_occupied
from ..states import SessionStatus
from ..status_recorder import record_status, utcnow
from .filter import Candidate


async def reserve(db: AsyncSession, hub: EventHub, sess: Session, candidate: Candidate) -> None:
    """Bind the session's kernel to the node and record its allocation; caller commits."""
    now = utcnow()
    for kernel in sess.kernels:
        kernel.agent_id = candidate.node.agent_id
        kernel.allocation = candidate.allocation.to_json()
        kernel.status = SessionStatus.SCHEDULED
        kernel.status_changed_at = now
    record_status(db, hub, sess, SessionStatus.SCHEDULED, f"placed on agent {candidate.node.agent_id}")
    await db.flush()
    await recalc_occupied(db, candidate.node.agent_id)
    candidate.node.state.add(candidate.allocation)
