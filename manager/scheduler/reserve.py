"""Reserve stage: take the chosen nodes' resources for sessions, in one transaction."""
from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.cluster import PORT_BLOCK
from corral.common.session_status import SessionStatus

from ..events import EventHub
from ..lifecycle.moves import move_kernels_of_sessions, move_sessions
from .fencing import LeaderFence
from .filter import Candidate
from .ports import blocks_in_use, pick_block

# (session id, its placement, its cluster mode)
Choice = tuple[str, Candidate, str]


def allocation_record(candidate: Candidate, ports: int | None = None) -> dict[str, Any]:
    """The allocation as stored on the kernel, shown to users and sent to the agent.

    Besides the bookkeeping fields of `Allocation`, GPU kernels get
    ``gpus``: per device its index, UUID, model, share and memory limit
    (share × device memory, bytes), taken from the node's topology now, so
    `session info` shows what the kernel holds even after the agent is gone.
    Kernels of multi-node sessions get their session's port block (``ports``, see `ports`).
    """
    record = candidate.allocation.to_json()
    gpus = candidate.node.state.gpus
    if gpus is not None and candidate.allocation.gpu_shares:
        record["gpus"] = gpus.describe(candidate.allocation.gpu_shares)
    if ports is not None:
        record["ports"] = {"base": ports, "count": PORT_BLOCK}
    return record


def where(candidate: Candidate) -> str:
    agents = candidate.agent_ids
    return f"agent {agents[0]}" if len(agents) == 1 else "agents " + ", ".join(agents)


async def reserve(
    db: AsyncSession, hub: EventHub, fence: LeaderFence, epoch: int, choices: Sequence[Choice]
) -> list[str]:
    """``PENDING → SCHEDULED`` for each (session, chosen nodes); the sessions that moved (the others were
    cancelled since the queue was read, or found no free port block, and take nothing).

    Raises `LostLeadership` when ``epoch`` is not the current leader's. The caller recomputes the agents'
    occupied slots (`recalc_occupied`) and commits, or rolls back. A few statements for any number of
    sessions: the fencing check, one guarded update per node, one history insert, one kernel update.
    """
    await fence.check(db, epoch)
    spread = [(sid, cand) for sid, cand, mode in choices if mode == "multi-node" and cand.subs]
    blocks: dict[str, int] = {}
    if spread:
        used = await blocks_in_use(db, [agent for _, cand in spread for agent in cand.agent_ids])
        for sid, cand in spread:
            if (base := pick_block(used, cand.agent_ids)) is not None:
                blocks[sid] = base
    ready = [(sid, cand) for sid, cand, mode in choices if sid in blocks or not (mode == "multi-node" and cand.subs)]
    won = set(await move_sessions(
        db, hub, {sid: f"placed on {where(c)}" for sid, c in ready}, SessionStatus.SCHEDULED,
        only_from={SessionStatus.PENDING},
    ))
    await move_kernels_of_sessions(
        db, SessionStatus.SCHEDULED, "",
        {
            (sid, idx): {"agent_id": kernel.node.agent_id, "allocation": allocation_record(kernel, blocks.get(sid))}
            for sid, c in ready if sid in won
            for idx, kernel in enumerate(c.kernels)
        },
        only_from={SessionStatus.PENDING},
    )
    return [sid for sid, _ in ready if sid in won]
