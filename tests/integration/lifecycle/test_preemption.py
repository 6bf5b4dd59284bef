"""Preemption of lower-priority batch sessions in a group that has it on, on SQLite and PostgreSQL: the
victim goes RUNNING → TERMINATING → PENDING and runs again later; a destroy meanwhile wins; a manager
crash half-way still requeues it; off (the default), nothing is preempted."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, update

from corral.manager.db.models import Kernel, ResourceGroup, Session

from .harness import AGENT_ID, Lab, Manager, open_lab

BIG = {"cpu": "6", "mem": "1g"}  # the agent has 8 cores: two of these never fit together


async def set_preemption(lab: Lab, on: bool = True) -> None:
    async with lab.sessionmaker() as db:
        await db.execute(update(ResourceGroup).where(ResourceGroup.name == "default").values(preemption=on))
        await db.commit()


async def reason_of(lab: Lab, session_id: str) -> str:
    async with lab.sessionmaker() as db:
        return str(await db.scalar(select(Session.status_reason).where(Session.id == session_id)))


async def running(lab: Lab, manager: Manager, **request: Any) -> str:
    """A session created, placed and reported running by the agent."""
    session_id = await lab.create(manager, **request)
    assert await manager.core.scheduler.run_pass() == 1
    await manager.settle()
    await lab.report_running(manager)
    assert await lab.status(session_id) == "RUNNING"
    return session_id


async def kernel_ends(lab: Lab, manager: Manager, session_id: str, exit_code: int = 0) -> None:
    """The agent reports that the session's container exited by itself."""
    (kernel,) = await lab.kernels(session_id)
    lab.agents.containers.pop(kernel.id, None)
    assert await manager.core.kernel_events.ended(kernel.id, exit_code, "container exited", "", agent_id=AGENT_ID)


async def test_a_higher_priority_session_preempts_a_batch_one_which_runs_again_later(lab: Lab) -> None:
    await set_preemption(lab)
    manager = lab.manager()
    low = await running(lab, manager, type="batch", command=["train", "--resume"], priority=10, resources=BIG)
    (first_kernel,) = await lab.kernels(low)

    high = await lab.create(manager, type="batch", command=["urgent"], priority=50, resources=BIG)
    assert await manager.core.scheduler.run_pass() == 0
    plan = manager.core.scheduler.last_plan
    assert plan is not None and [(v, a) for v, a, _ in plan.preemptions] == [(low, AGENT_ID)]
    assert f"waiting for preempted sessions {low} to stop" in plan.reasons[high]
    await manager.settle()  # the terminator removes the container; its end sends the session back

    assert await lab.status(low) == "PENDING"
    history = await lab.history(low)
    assert history[-3:] == ["RUNNING", "TERMINATING", "PENDING"]
    reasons = await lab.history_reasons(low)
    assert reasons[-2] == f"preempted by session {high} (priority 50 > 10)"
    assert reasons[-1] == f"preempted by session {high} (priority 50 > 10); back in the queue"
    (requeued,) = await lab.kernels(low)
    assert requeued.id != first_kernel.id and requeued.status == "PENDING"
    assert requeued.agent_id is None and requeued.allocation is None
    assert first_kernel.id not in lab.agents.containers

    # The high-priority one starts; the preempted one waits for it (nobody lower to preempt now).
    assert await manager.core.scheduler.run_pass() == 1
    await manager.settle()
    await lab.report_running(manager)
    assert await lab.status(high) == "RUNNING"
    assert await lab.status(low) == "PENDING"
    assert await manager.core.scheduler.run_pass() == 0
    assert manager.core.scheduler.last_plan is not None and not manager.core.scheduler.last_plan.preemptions
    assert await lab.status(high) == "RUNNING"

    # Once it has ended, the preempted one runs again, from its command, under a new kernel id.
    await kernel_ends(lab, manager, high)
    assert await lab.status(high) == "TERMINATED"
    assert await manager.core.scheduler.run_pass() == 1
    await manager.settle()
    await lab.report_running(manager)
    assert await lab.status(low) == "RUNNING"
    (again,) = await lab.kernels(low)
    assert again.id == requeued.id and lab.agents.containers[again.id]["command"] == ["train", "--resume"]
    assert await lab.history(low) == ["PENDING", "SCHEDULED", "PREPARING", "RUNNING", "TERMINATING", "PENDING",
                                      "SCHEDULED", "PREPARING", "RUNNING"]
    assert "TERMINATED" not in await lab.history(low)


async def test_off_by_default_and_never_for_interactive_or_equal_priority(lab: Lab) -> None:
    manager = lab.manager()
    low = await running(lab, manager, type="batch", command=["x"], priority=10, resources=BIG)
    high = await lab.create(manager, type="batch", command=["y"], priority=50, resources=BIG)
    assert await manager.core.scheduler.run_pass() == 0  # preemption is off in the group
    assert manager.core.scheduler.last_plan is not None and not manager.core.scheduler.last_plan.preemptions
    assert await lab.status(low) == "RUNNING"
    await manager.sessions.destroy(lab.user, high)
    await manager.sessions.destroy(lab.user, low)
    await manager.settle()

    await set_preemption(lab)
    shell = await running(lab, manager, type="interactive", priority=10, resources=BIG)
    same = await lab.create(manager, type="batch", command=["y"], priority=10, resources=BIG)
    higher = await lab.create(manager, type="batch", command=["z"], priority=50, resources=BIG)
    assert await manager.core.scheduler.run_pass() == 0
    plan = manager.core.scheduler.last_plan
    assert plan is not None and not plan.preemptions
    assert await lab.status(shell) == "RUNNING"
    assert "waiting for resources" in plan.reasons[higher] and same in plan.reasons


async def test_destroy_while_being_preempted_wins(lab: Lab) -> None:
    await set_preemption(lab)
    manager = lab.manager()
    low = await running(lab, manager, type="batch", command=["x"], priority=10, resources=BIG)
    lab.agents.hold_destroy = asyncio.Event()  # the container's removal hangs until released
    high = await lab.create(manager, type="batch", command=["y"], priority=50, resources=BIG)
    assert await manager.core.scheduler.run_pass() == 0
    await asyncio.wait_for(lab.agents.destroy_entered.wait(), 5)
    assert await lab.status(low) == "TERMINATING"

    view, final = await manager.sessions.destroy(lab.user, low)
    assert (view["status"], final) == ("TERMINATING", False)
    lab.agents.hold_destroy.set()
    await manager.settle()
    assert await lab.status(low) == "TERMINATED"
    assert await lab.history(low) == ["PENDING", "SCHEDULED", "PREPARING", "RUNNING", "TERMINATING", "TERMINATING",
                                      "TERMINATED"]
    assert await reason_of(lab, low) == "destroyed by user while it was being preempted"
    assert (await lab.history_reasons(low))[-2:] == ["destroyed by user while it was being preempted"] * 2
    assert await manager.core.scheduler.run_pass() == 1  # the high-priority one takes the room
    assert await lab.status(high) in ("SCHEDULED", "PREPARING")
    await manager.settle()
    assert await lab.status(low) == "TERMINATED"


async def test_destroy_right_after_the_requeue_cancels_it(lab: Lab) -> None:
    await set_preemption(lab)
    manager = lab.manager()
    low = await running(lab, manager, type="batch", command=["x"], priority=10, resources=BIG)
    await lab.create(manager, type="batch", command=["y"], priority=50, resources=BIG)
    assert await manager.core.scheduler.run_pass() == 0
    await manager.settle()
    assert await lab.status(low) == "PENDING"
    view, final = await manager.sessions.destroy(lab.user, low)
    assert (view["status"], final) == ("CANCELLED", True)
    assert [k.status for k in await lab.kernels(low)] == ["CANCELLED"]


async def test_destroy_racing_with_the_requeue_never_brings_it_back(lab: Lab) -> None:
    """The destroy and the kernel's end land together: whichever commits first, the session ends."""
    await set_preemption(lab)
    manager = lab.manager()
    low = await running(lab, manager, type="batch", command=["x"], priority=10, resources=BIG)
    lab.agents.hold_destroy = asyncio.Event()
    await lab.create(manager, type="batch", command=["y"], priority=50, resources=BIG)
    assert await manager.core.scheduler.run_pass() == 0
    await asyncio.wait_for(lab.agents.destroy_entered.wait(), 5)
    lab.agents.hold_destroy.set()
    destroyed, _ = await asyncio.gather(manager.sessions.destroy(lab.user, low), manager.settle())
    await manager.settle()
    assert await lab.status(low) in ("TERMINATED", "CANCELLED")
    assert destroyed[0]["status"] in ("TERMINATING", "TERMINATED", "CANCELLED")
    assert all(k.status in ("TERMINATED", "CANCELLED") for k in await lab.kernels(low))
    assert await manager.core.scheduler.run_pass() == 1
    await manager.settle()
    assert await lab.status(low) in ("TERMINATED", "CANCELLED")


async def test_destroy_that_read_terminating_after_which_the_requeue_commits_cancels_it(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced interleaving: the destroy has read TERMINATING, then the kernel's end sends the session back
    to the queue before the destroy's takeover: the takeover finds nothing, the destroy decides again.
    PostgreSQL only: on SQLite the destroy's transaction holds the write lock from its first (failed)
    move on, so the kernel's end cannot commit in between."""
    if lab.engine.dialect.name == "sqlite":
        pytest.skip("cannot interleave there: one writer at a time")
    from corral.manager import session_service
    from corral.manager.lifecycle.preemption import stop_preemption

    await set_preemption(lab)
    manager = lab.manager()
    low = await running(lab, manager, type="batch", command=["x"], priority=10, resources=BIG)
    lab.agents.hold_destroy = asyncio.Event()
    await lab.create(manager, type="batch", command=["y"], priority=50, resources=BIG)
    assert await manager.core.scheduler.run_pass() == 0
    await asyncio.wait_for(lab.agents.destroy_entered.wait(), 5)
    took_over: list[bool] = []

    async def requeue_first(db: Any, hub: Any, session_id: str, reason: str) -> bool:
        lab.agents.hold_destroy.set()  # type: ignore[union-attr]
        await manager.core.terminator.in_flight.wait_idle()
        assert await lab.status(low) == "PENDING"
        took_over.append(await stop_preemption(db, hub, session_id, reason))
        return took_over[-1]

    monkeypatch.setattr(session_service, "stop_preemption", requeue_first)
    view, final = await manager.sessions.destroy(lab.user, low)
    assert took_over == [False]
    assert (view["status"], final) == ("CANCELLED", True)
    assert (await lab.history(low))[-3:] == ["TERMINATING", "PENDING", "CANCELLED"]
    assert [k.status for k in await lab.kernels(low)] == ["CANCELLED"]


async def test_a_manager_crash_while_preempting_still_requeues_the_victim(db_url: str) -> None:
    lab = await open_lab(db_url, lifecycle={"terminate_retry_s": 0.01})
    try:
        await _crash_while_preempting(lab)
    finally:
        await lab.close()


async def _crash_while_preempting(lab: Lab) -> None:
    await set_preemption(lab)
    first = lab.manager()
    low = await running(lab, first, type="batch", command=["x"], priority=10, resources=BIG)
    lab.agents.unreachable = True  # the removal fails: the session stays TERMINATING
    high = await lab.create(first, type="batch", command=["y"], priority=50, resources=BIG)
    assert await first.core.scheduler.run_pass() == 0
    await first.settle()
    await first.crash()
    assert await lab.status(low) == "TERMINATING"

    lab.agents.unreachable = False
    second = lab.manager(manager_id="manager-2")
    # The next pass preempts nothing more: it waits for the session already going away.
    assert await second.core.scheduler.run_pass() == 0
    plan = second.core.scheduler.last_plan
    assert plan is not None and not plan.preemptions
    assert f"waiting for preempted sessions {low} to stop" in await reason_of(lab, high)
    await asyncio.sleep(0.05)
    await second.core.recovery.run_once(just_took_lead=True)
    await second.settle()
    assert await lab.status(low) == "PENDING"
    assert (await lab.history(low))[-2:] == ["TERMINATING", "PENDING"]
    assert await second.core.scheduler.run_pass() == 1
    await second.settle()
    assert await lab.status(high) == "PREPARING"


async def test_the_lowest_priority_then_the_latest_started_is_preempted(lab: Lab) -> None:
    await set_preemption(lab)
    manager = lab.manager()
    half = {"cpu": "3", "mem": "1g"}
    older = await running(lab, manager, type="batch", command=["a"], priority=20, resources=half)
    newer = await running(lab, manager, type="batch", command=["b"], priority=20, resources=half)
    async with lab.sessionmaker() as db:  # make the start order unambiguous
        started = await db.scalar(select(Session.started_at).where(Session.id == newer))
        await db.execute(update(Session).where(Session.id == older).values(started_at=started.replace(year=2020)))
        await db.commit()
    high = await lab.create(manager, type="batch", command=["c"], priority=50, resources={"cpu": "4", "mem": "1g"})
    assert await manager.core.scheduler.run_pass() == 0
    plan = manager.core.scheduler.last_plan
    assert plan is not None and [v for v, _, _ in plan.preemptions] == [newer]
    await manager.settle()
    assert await lab.status(newer) == "PENDING" and await lab.status(older) == "RUNNING"
    assert await manager.core.scheduler.run_pass() == 1
    assert await lab.status(high) in ("SCHEDULED", "PREPARING")
    async with lab.sessionmaker() as db:
        kernel_status = await db.scalar(select(Kernel.status).where(Kernel.session_id == older))
    assert kernel_status == "RUNNING"
