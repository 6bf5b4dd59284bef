"""An agent's occupied slots, derived from its live kernels so it never drifts."""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.allocator import NodeState
from corral.common.errors import CorralError
from corral.common.node_resources import Allocation, NodeCapacity
from corral.common.session_status import ACTIVE
from corral.common.slots import ResourceSlot

from ..db.models import Agent, Kernel


async def recalc_occupied(db: AsyncSession, agent_ids: Iterable[str | None]) -> None:
    """Recompute ``occupied_slots`` of these agents (locks their rows: the last lock a writer takes)."""
    for agent_id in sorted({a for a in agent_ids if a}):
        agent = await db.get(Agent, agent_id, with_for_update=True, populate_existing=True)
        if agent is None:
            continue
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
