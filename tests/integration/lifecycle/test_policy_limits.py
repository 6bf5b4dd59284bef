"""Resource policies' lifetime and idle limits, enforced by the leader's lifecycle sweep."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from corral.manager.clock import utcnow
from corral.manager.db.models import ResourcePolicy, Session, User

from .harness import Lab, Manager


async def _running(lab: Lab, manager: Manager, **request: object) -> str:
    session_id = await lab.create(manager, **request)
    assert await manager.core.scheduler.run_pass() == 1
    await manager.settle()
    await lab.report_running(manager)
    assert await lab.status(session_id) == "RUNNING"
    return session_id


async def _policy(lab: Lab, **limits: float) -> None:
    async with lab.sessionmaker() as db:
        db.add(ResourcePolicy(name="limited", max_slots={}, created_at=utcnow(), **limits))
        await db.execute(update(User).where(User.id == lab.user.user_id).values(resource_policy="limited"))
        await db.commit()


async def _started(lab: Lab, session_id: str) -> datetime:
    async with lab.sessionmaker() as db:
        started = await db.scalar(select(Session.started_at).where(Session.id == session_id))
    assert started is not None
    return started


async def _reason(lab: Lab, session_id: str) -> str:
    async with lab.sessionmaker() as db:
        return str(await db.scalar(select(Session.status_reason).where(Session.id == session_id)))


async def test_a_session_past_its_lifetime_is_terminated_with_that_reason(lab: Lab) -> None:
    manager = lab.manager()
    await _policy(lab, max_session_lifetime_s=7200)
    session_id = await _running(lab, manager, type="batch", command=["sleep", "1d"])
    limits = manager.core.recovery._limits
    assert limits is not None
    started = await _started(lab, session_id)
    assert await limits.run_once(started + timedelta(seconds=7199)) == []
    assert await limits.run_once(started + timedelta(seconds=7200)) == [session_id]
    await manager.settle()
    assert await lab.status(session_id) == "TERMINATED"
    assert "lifetime limit of 2h 0m reached" in await lab.history_reasons(session_id)


async def test_an_idle_interactive_session_is_warned_then_terminated_and_activity_resets_the_clock(lab: Lab) -> None:
    manager = lab.manager()
    await _policy(lab, idle_timeout_s=600)
    session_id = await _running(lab, manager)
    batch = await _running(lab, manager, type="batch", command=["sleep", "1d"])
    limits = manager.core.recovery._limits
    assert limits is not None
    started = await _started(lab, session_id)

    await limits.run_once(started + timedelta(seconds=200))
    assert not (await _reason(lab, session_id)).startswith("idle warning")
    await limits.run_once(started + timedelta(seconds=500))  # past max(600 - 300, 480) s idle: warned
    warned = await _reason(lab, session_id)
    assert warned.startswith("idle warning: idle for 8m 20s; it will be terminated in about 1m 40s")

    async with lab.sessionmaker() as db:  # someone opens a terminal: the clock starts again
        await db.execute(update(Session).where(Session.id == session_id)
                         .values(last_activity_at=started + timedelta(seconds=550)))
        await db.commit()
    assert await limits.run_once(started + timedelta(seconds=700)) == []
    assert not (await _reason(lab, session_id)).startswith("idle warning")

    assert await limits.run_once(started + timedelta(seconds=1150)) == [session_id]
    await manager.settle()
    assert await lab.status(session_id) == "TERMINATED"
    assert "idle for 10m (idle timeout)" in await lab.history_reasons(session_id)
    assert await lab.status(batch) == "RUNNING"  # batch work is never idle-culled


async def test_sessions_without_limits_are_left_alone(lab: Lab) -> None:
    manager = lab.manager()
    session_id = await _running(lab, manager)
    limits = manager.core.recovery._limits
    assert limits is not None
    assert await limits.run_once(utcnow() + timedelta(days=30)) == []
    assert await lab.status(session_id) == "RUNNING"
