"""The leader's incremental cluster snapshot stays equal to one rebuilt from the database through
placements, destroys, requeues (a kernel's new id) and agents leaving."""
from __future__ import annotations

from sqlalchemy import update

from corral.manager.clock import utcnow
from corral.manager.db.models import Agent
from corral.manager.scheduler.snapshot import ClusterSnapshot

from .harness import AGENT_ID, Lab, Manager


async def _same_as_rebuilt(lab: Lab, manager: Manager) -> None:
    live = manager.core.scheduler.snapshot
    fresh = ClusterSnapshot()
    async with lab.sessionmaker() as db:
        await live.refresh(db, utcnow())
        await fresh.refresh(db, utcnow())
    assert set(live.nodes) == set(fresh.nodes)
    assert {k: (h.agent_id, h.allocation) for k, h in live.held.items()} == \
        {k: (h.agent_id, h.allocation) for k, h in fresh.held.items()}
    for agent_id, node in live.nodes.items():
        assert node.state.free_slots() == fresh.nodes[agent_id].state.free_slots()
    assert live.drift_found == 0


async def test_the_snapshot_follows_every_change_without_a_rebuild(lab: Lab) -> None:
    manager = lab.manager()
    sessions = [await lab.create(manager) for _ in range(3)]
    assert await manager.core.scheduler.run_pass() == 3
    await manager.settle()
    await lab.report_running(manager)
    await _same_as_rebuilt(lab, manager)

    await manager.sessions.destroy(lab.user, sessions[0])
    await manager.settle()
    await _same_as_rebuilt(lab, manager)

    later = await lab.create(manager)
    assert await manager.core.scheduler.run_pass() == 1
    await manager.settle()
    assert await lab.status(later) == "PREPARING"
    old_kernel = (await lab.kernels(later))[0].id
    assert await manager.core.binder.requeue(later, "test: back in the queue")  # gets a new kernel id
    assert (await lab.kernels(later))[0].id != old_kernel
    await _same_as_rebuilt(lab, manager)

    async with lab.sessionmaker() as db:  # the agent goes away: its node leaves the snapshot
        await db.execute(update(Agent).where(Agent.id == AGENT_ID).values(status="LOST"))
        await db.commit()
    await _same_as_rebuilt(lab, manager)
    assert AGENT_ID not in manager.core.scheduler.snapshot.nodes
