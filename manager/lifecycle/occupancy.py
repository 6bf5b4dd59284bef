"""An agent's occupied slots, derived from its live kernels so it never drifts."""
from __future__ import annotations

from decimal import Decimal
from typing import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.node_resources import Allocation
from corral.common.session_status import ACTIVE
from corral.common.slots import CPU, CUDA_DEVICE, CUDA_SHARES, MEM, ResourceSlot

from ..db.models import Agent, Kernel

_CHUNK = 500


def occupied_by(allocations: Iterable[Allocation]) -> ResourceSlot:
    """What these allocations occupy on one node: cores and memory summed; ``cuda.device`` the devices
    any of them uses (partly used devices count as busy), ``cuda.shares`` the shares summed."""
    cpu, mem, shares = Decimal(0), 0, Decimal(0)
    used: dict[int, Decimal] = {}
    for allocation in allocations:
        cpu += allocation.cpu
        mem += allocation.mem
        for index, share in allocation.gpu_shares.items():
            used[index] = used.get(index, Decimal(0)) + share
            shares += share
    slots: dict[str, object] = {CPU: cpu, MEM: mem}
    if used:
        slots.update({CUDA_DEVICE: Decimal(sum(1 for share in used.values() if share > 0)), CUDA_SHARES: shares})
    return ResourceSlot(slots)


async def recalc_occupied(db: AsyncSession, agent_ids: Iterable[str | None]) -> None:
    """Recompute ``occupied_slots`` of these agents (locks their rows: the last lock a writer takes).

    Three statements per chunk of agents whatever their number: lock the rows (in id order), read
    their live kernels' allocations, write every agent's figure in one executemany.
    """
    wanted = sorted({a for a in agent_ids if a})
    agents = Agent.__table__
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start:start + _CHUNK]
        present = (await db.scalars(
            select(Agent.id).where(Agent.id.in_(chunk)).order_by(Agent.id).with_for_update()
        )).all()
        if not present:
            continue
        held: dict[str, list[Allocation]] = {agent_id: [] for agent_id in present}
        rows = await db.execute(
            select(Kernel.agent_id, Kernel.allocation)
            .where(Kernel.agent_id.in_(present), Kernel.status.in_(list(ACTIVE)))
        )
        for agent_id, allocation in rows:
            if allocation:
                held[agent_id].append(Allocation.from_json(allocation))
        await db.execute(
            agents.update().where(agents.c.id == bindparam("_id")).values(occupied_slots=bindparam("_occupied")),
            [{"_id": agent_id, "_occupied": occupied_by(allocs).to_json()} for agent_id, allocs in held.items()],
        )
