"""Each race seen in the field, with its interleaving forced, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from corral.manager.db.models import Session
from corral.manager.scheduler.fencing import LeaderFence, LostLeadership
from corral.manager.scheduler.pending import PendingReader, PendingSession
from corral.manager.scheduler.registry import SchedulerStages

import pytest

from .harness import Lab


@dataclass
class QueueThen(PendingReader):
    """The queue reader, running ``hook`` after it has read the pending sessions (before any reservation)."""

    hook: Callable[[], Awaitable[None]]

    async def pending(self, db: AsyncSession, limit: int, after: PendingSession | None = None
                      ) -> Sequence[PendingSession]:
        rows = await PendingReader().pending(db, limit, after)
        await self.hook()
        return rows


def stages_with(hook: Callable[[], Awaitable[None]]) -> SchedulerStages:
    return SchedulerStages(QueueThen(hook))


async def test_cancel_between_queue_read_and_reservation_never_starts(lab: Lab) -> None:
    answers: list[dict[str, Any]] = []

    async def destroy_now() -> None:
        view, final = await manager.sessions.destroy(lab.user, session_id)
        answers.append(view)
        assert final

    manager = lab.manager(stages=stages_with(destroy_now))
    session_id = await lab.create(manager)
    assert await manager.core.scheduler.run_pass() == 0
    await manager.settle()
    assert answers[0]["status"] == "CANCELLED"
    assert await lab.status(session_id) == "CANCELLED"
    assert await lab.history(session_id) == ["PENDING", "CANCELLED"]
    assert lab.agents.create_calls == 0 and not lab.agents.containers
    assert await lab.occupied() == {}


async def test_cancel_while_the_agent_creates_the_container_removes_it(lab: Lab) -> None:
    manager = lab.manager()
    lab.agents.hold_create = asyncio.Event()
    session_id = await lab.create(manager)
    assert await manager.core.scheduler.run_pass() == 1
    await asyncio.wait_for(lab.agents.create_entered.wait(), 5)
    view, final = await manager.sessions.destroy(lab.user, session_id)
    assert view["status"] == "TERMINATING" and not final
    lab.agents.hold_create.set()  # the create lands after the destroy was sent
    await manager.settle()
    await lab.report_running(manager)  # a late "running" from the agent changes nothing
    assert await lab.status(session_id) == "TERMINATED"
    assert "RUNNING" not in await lab.history(session_id)
    assert not lab.agents.containers
    assert not any(Decimal(v) for v in (await lab.occupied()).values())


async def test_destroy_races_with_the_reservation_and_answers_the_real_end(lab: Lab) -> None:
    """Destroy lands right after the scheduler placed the session: the answer is TERMINATING, not CANCELLED."""
    manager = lab.manager()
    session_id = await lab.create(manager)
    manager.core.binder.spawn_many = lambda sids: []  # type: ignore[method-assign] - placed, bind not yet begun
    assert await manager.core.scheduler.run_pass() == 1
    view, final = await manager.sessions.destroy(lab.user, session_id)
    assert (view["status"], final) == ("TERMINATING", False)
    await manager.settle()
    assert await lab.status(session_id) == "TERMINATED"
    assert await lab.history(session_id) == ["PENDING", "SCHEDULED", "TERMINATING", "TERMINATED"]
    # A bind that starts only now finds the session gone and asks the agent for nothing.
    await manager.core.binder.bind(session_id)
    assert lab.agents.create_calls == 0


async def test_manager_killed_after_reservation_is_bound_by_the_next_leader(lab: Lab) -> None:
    first = lab.manager()
    first.core.binder.spawn_many = lambda sids: []  # type: ignore[method-assign] - dies before binding
    session_id = await lab.create(first)
    assert await first.core.scheduler.run_pass() == 1
    await first.crash()
    assert await lab.status(session_id) == "SCHEDULED"

    second = lab.manager(manager_id="manager-2")
    await second.core.recovery.run_once(just_took_lead=True)
    await second.settle()
    assert await lab.status(session_id) == "PREPARING"
    await lab.report_running(second)
    assert await lab.status(session_id) == "RUNNING"


async def test_manager_killed_during_bind_is_re_driven(db_url: str) -> None:
    from .harness import open_lab

    lab = await open_lab(db_url, lifecycle={"prepare_retry_s": 0.01})
    try:
        first = lab.manager()
        lab.agents.hold_create = asyncio.Event()
        session_id = await lab.create(first)
        await first.core.scheduler.run_pass()
        await asyncio.wait_for(lab.agents.create_entered.wait(), 5)
        await first.crash()  # the create request died with the manager
        lab.agents.hold_create = None
        assert await lab.status(session_id) == "PREPARING" and not lab.agents.containers

        second = lab.manager(manager_id="manager-2")
        await asyncio.sleep(0.05)
        await second.core.recovery.run_once()
        await second.settle()
        assert list(lab.agents.containers) == [k.id for k in await lab.kernels(session_id)]
        await lab.report_running(second)
        assert await lab.status(session_id) == "RUNNING"
    finally:
        await lab.close()


async def test_agent_unreachable_at_bind_requeues_and_runs_when_back(lab: Lab) -> None:
    manager = lab.manager()
    lab.agents.unreachable = True
    session_id = await lab.create(manager)
    await manager.core.scheduler.run_pass()
    await manager.settle()
    assert await lab.status(session_id) == "PENDING"
    kernel = (await lab.kernels(session_id))[0]
    assert kernel.agent_id is None and kernel.allocation is None
    assert await lab.history(session_id) == ["PENDING", "SCHEDULED", "PREPARING", "PENDING"]

    lab.agents.unreachable = False
    await manager.core.scheduler.run_pass()
    await manager.settle()
    await lab.report_running(manager)
    assert await lab.status(session_id) == "RUNNING"


async def test_a_definite_refusal_fails_the_session_with_its_reason(lab: Lab) -> None:
    manager = lab.manager()
    lab.agents.refuse_with = "image img:1 not found on this agent"
    session_id = await lab.create(manager)
    await manager.core.scheduler.run_pass()
    await manager.settle()
    assert await lab.status(session_id) == "ERROR"
    async with lab.sessionmaker() as db:
        sess = await db.get(Session, session_id)
        assert sess is not None and "image img:1 not found" in sess.status_reason


async def test_stale_leader_cannot_reserve(lab: Lab) -> None:
    old = lab.manager()
    session_id = await lab.create(old)
    old_epoch = await old.core.scheduler.epoch()
    newer = await LeaderFence(lab.sessionmaker, "manager-2").claim(old_epoch + 10)
    assert newer > old_epoch
    with pytest.raises(LostLeadership):
        await old.core.scheduler.run_pass()
    assert await lab.status(session_id) == "PENDING"
    with pytest.raises(LostLeadership):
        await LeaderFence(lab.sessionmaker, "manager-1").claim(old_epoch)  # an older term cannot take it back


async def test_agent_that_lost_a_starting_kernel_sends_it_back_to_the_queue(db_url: str) -> None:
    from corral.manager.agent_registry import Heartbeat

    from .harness import AGENT_ADDRESS, AGENT_ID, open_lab

    lab = await open_lab(db_url, agents={"heartbeat_timeout_s": 0.01})
    try:
        manager = lab.manager()
        session_id = await lab.create(manager)
        await manager.core.scheduler.run_pass()
        await manager.settle()
        lab.agents.containers.clear()  # e.g. the agent restarted before Docker created it
        await asyncio.sleep(0.05)
        async with lab.sessionmaker() as db:
            from corral.manager.db.models import Agent

            agent = await db.get(Agent, AGENT_ID)
            assert agent is not None
            capacity = agent.capacity
        answer = await manager.core.registry.heartbeat(
            Heartbeat(agent_id=AGENT_ID, address=AGENT_ADDRESS, capacity=capacity, kernels=[])
        )
        assert answer == {"destroy": []}
        assert await lab.status(session_id) == "PENDING"
        await manager.core.scheduler.run_pass()
        await manager.settle()
        assert await lab.status(session_id) == "PREPARING"
    finally:
        await lab.close()


async def test_starting_sessions_of_a_lost_agent_wait_in_the_queue(lab: Lab) -> None:
    manager = lab.manager()
    manager.core.binder.spawn_many = lambda sids: []  # type: ignore[method-assign]
    session_id = await lab.create(manager)
    await manager.core.scheduler.run_pass()
    assert await lab.status(session_id) == "SCHEDULED"
    assert await manager.core.registry.mark_lost_agents(timeout=0) == ["node-1"]
    assert await lab.status(session_id) == "PENDING"
    async with lab.sessionmaker() as db:
        sess = await db.get(Session, session_id)
        assert sess is not None and "agent lost" in sess.status_reason and "back in the queue" in sess.status_reason
    assert not any(Decimal(v) for v in (await lab.occupied()).values())
