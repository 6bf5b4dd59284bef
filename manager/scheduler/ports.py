"""Port blocks for multi-node cluster sessions: their kernels use the node's network (host networking),
so each such session gets a block of ``PORT_BLOCK`` ports, the same on every node it uses and free on
all of them (``MASTER_PORT`` is its first port, the kernels' sshd the second, their services the rest).

The block is chosen when the gang is reserved (the leader's commit, one at a time) and kept in each
kernel's allocation record (``ports``), so it is freed with the allocation.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.cluster import PORT_BLOCK, PORT_RANGE

from ..db.models import Kernel
from ..states import ACTIVE


def block_of(allocation: Mapping[str, Any] | None) -> int | None:
    ports = (allocation or {}).get("ports")
    return int(ports["base"]) if isinstance(ports, Mapping) and "base" in ports else None


async def blocks_in_use(db: AsyncSession, agent_ids: Iterable[str]) -> dict[str, set[int]]:
    """The port blocks live kernels hold, per agent."""
    wanted = sorted(set(agent_ids))
    used: dict[str, set[int]] = {agent: set() for agent in wanted}
    if not wanted:
        return used
    rows = await db.execute(
        select(Kernel.agent_id, Kernel.allocation)
        .where(Kernel.agent_id.in_(wanted), Kernel.status.in_(list(ACTIVE)))
    )
    for agent_id, allocation in rows:
        if (base := block_of(allocation)) is not None:
            used[agent_id].add(base)
    return used


def pick_block(used: dict[str, set[int]], agent_ids: Iterable[str], port_range: tuple[int, int] = PORT_RANGE
               ) -> int | None:
    """The lowest block free on every one of ``agent_ids`` (then taken there), or None when none is."""
    agents = list(agent_ids)
    low, high = port_range
    for base in range(low, high - PORT_BLOCK + 2, PORT_BLOCK):
        if all(base not in used.setdefault(agent, set()) for agent in agents):
            for agent in agents:
                used[agent].add(base)
            return base
    return None
