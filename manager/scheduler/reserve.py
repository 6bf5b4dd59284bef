"""Reserve stage: take the chosen node's resources for a session, in one transaction."""
from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.session_status import SessionStatus

from ..events import EventHub
from ..lifecycle.moves import move_kernels_of_sessions, move_sessions
from .fencing import LeaderFence
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


async def reserve(
    db: AsyncSession, hub: EventHub, fence: LeaderFence, epoch: int, choices: Sequence[tuple[str, Candidate]]
) -> list[str]:
    """``PENDING → SCHEDULED`` for each (session, chosen node); the sessions that moved (the others were
    cancelled since the queue was read, and take nothing).

    Raises `LostLeadership` when ``epoch`` is not the current leader's. The caller recomputes the agents'
    occupied slots (`recalc_occupied`) and commits, or rolls back. A few statements for any number of
    sessions: the fencing check, one guarded update per node, one history insert, one kernel update.
    """
    await fence.check(db, epoch)
    won = set(await move_sessions(
        db, hub, {sid: f"placed on agent {c.node.agent_id}" for sid, c in choices}, SessionStatus.SCHEDULED,
        only_from={SessionStatus.PENDING},
    ))
    await move_kernels_of_sessions(
        db, SessionStatus.SCHEDULED, "",
        {sid: {"agent_id": c.node.agent_id, "allocation": allocation_record(c)} for sid, c in choices if sid in won},
        only_from={SessionStatus.PENDING},
    )
    return [sid for sid, _ in choices if sid in won]
