"""Reserve stage: take the chosen node's resources for a session, in one transaction."""
from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.session_status import SessionStatus

from ..events import EventHub
from ..lifecycle.moves import move_kernels, move_session
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
    db: AsyncSession, hub: EventHub, fence: LeaderFence, epoch: int, session_id: str, candidate: Candidate,
    *, fenced: bool = False,
) -> bool:
    """``PENDING → SCHEDULED`` on the candidate's node; False when the session is no longer pending.

    Raises `LostLeadership` when ``epoch`` is not the current leader's (``fenced``: this transaction
    checked already and holds the fencing row). The caller recomputes the agent's occupied slots
    (`recalc_occupied`) and commits, or rolls back.
    """
    if not fenced:
        await fence.check(db, epoch)
    agent_id = candidate.node.agent_id
    if not await move_session(
        db, hub, session_id, SessionStatus.SCHEDULED, f"placed on agent {agent_id}", only_from={SessionStatus.PENDING}
    ):
        return False
    await move_kernels(
        db, SessionStatus.SCHEDULED, "", session_id=session_id, only_from={SessionStatus.PENDING},
        agent_id=agent_id, allocation=allocation_record(candidate),
    )
    return True
