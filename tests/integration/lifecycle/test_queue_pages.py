"""A pass looks past a head of pending sessions that cannot fit now: nothing behind them is hidden."""
from __future__ import annotations

from corral.manager.scheduler.dispatcher import BATCH

from .harness import Lab


async def test_a_small_session_behind_a_page_of_big_ones_is_placed(lab: Lab) -> None:
    manager = lab.manager()
    hog = await lab.create(manager, resources={"cpu": "1", "mem": "15g"})
    assert await manager.core.scheduler.run_pass() == 1  # 1 GiB of the agent's 16 is left
    await manager.settle()
    big = [await lab.create(manager, resources={"cpu": "1", "mem": "2g"}) for _ in range(BATCH + 10)]
    small = await lab.create(manager, resources={"cpu": "1", "mem": "256m"})
    assert await manager.core.scheduler.run_pass() == 1
    await manager.settle()
    assert await lab.status(small) in ("SCHEDULED", "PREPARING")
    assert {await lab.status(sid) for sid in big[:3] + big[-3:]} == {"PENDING"}
    assert await lab.status(hog) in ("SCHEDULED", "PREPARING")
