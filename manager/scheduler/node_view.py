"""The scheduler's in-memory picture of the nodes for one pass."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.allocator import NodeState
from corral.common.errors import CorralError
from corral.common.node_resources import Allocation, NodeCapacity

from ..db.models import Agent, Kernel
from ..states import ACTIVE, AgentStatus

log = logging.getLogger(__name__)


@dataclass
class NodeView:
    agent_id: str
    address: str
    resource_group: str
    first_contact: datetime
    state: NodeState


async def load_node_views(db: AsyncSession) -> list[NodeView]:
    """Alive agents with their current allocations replayed: two queries per pass, not per node."""
    agents = (await db.scalars(select(Agent).where(Agent.status == AgentStatus.ALIVE))).all()
    allocations: dict[str, list[Allocation]] = {}
    rows = await db.execute(
        select(Kernel.agent_id, Kernel.allocation).where(Kernel.status.in_(list(ACTIVE)), Kernel.agent_id.is_not(None))
    )
    for agent_id, alloc in rows:
        if alloc:
            allocations.setdefault(agent_id, []).append(Allocation.from_json(alloc))
    views = []
    for agent in agents:
        try:
            state = NodeState(NodeCapacity.from_json(agent.capacity), allocations.get(agent.id, ()))
        except CorralError as exc:
            # E.g. the node came back with fewer GPUs than its kernels hold: don't place more there.
            log.warning("agent %s skipped this pass: its allocations do not fit its capacity (%s)", agent.id, exc)
            continue
        views.append(NodeView(agent.id, agent.address, agent.resource_group, agent.first_contact, state))
    return views
