"""Each queue policy runs a real pass against the database (contexts, decayed usage, expected ends)."""
from __future__ import annotations

import pytest
from sqlalchemy import update

from corral.manager.db.models import ResourceGroup

from .harness import Lab


@pytest.mark.parametrize("policy", ["fifo", "lifo", "drf", "fair-share"])
async def test_a_pass_under_each_policy_places_what_fits_and_explains_the_rest(lab: Lab, policy: str) -> None:
    async with lab.sessionmaker() as db:
        await db.execute(update(ResourceGroup).where(ResourceGroup.name == "default").values(queue_policy=policy))
        await db.commit()
    manager = lab.manager()
    first = await lab.create(manager, resources={"cpu": "4", "mem": "1g"})
    assert await manager.core.scheduler.run_pass() == 1
    await manager.settle()
    await lab.report_running(manager)
    # The agent has 8 cores: a 6-core session cannot start now and becomes the head; 2 cores still fit.
    big = await lab.create(manager, resources={"cpu": "6", "mem": "1g"})
    small = await lab.create(manager, resources={"cpu": "2", "mem": "1g"})
    placed = await manager.core.scheduler.run_pass()
    await manager.settle()
    assert await lab.status(big) == "PENDING"
    plan = manager.core.scheduler.last_plan
    assert plan is not None
    reasons = {e.session.id: e.reason for e in plan.queues["default"]}
    # Whatever the order, the small one fits beside the head's reservation (6 cores free once the first ends).
    assert "head of the queue: agent" in reasons[big]
    assert placed == 1 and await lab.status(small) in ("SCHEDULED", "PREPARING")
    assert await lab.status(first) == "RUNNING"
