"""Resource policies' lifetime and idle limits, enforced by the leader's lifecycle sweep."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select, update

from corral.common.ids import new_id
from corral.manager.clock import utcnow
from corral.manager.db.models import Project, ResourcePolicy, Session, User
from corral.manager.events import SessionProgressEvent
from corral.manager.session_access import AccessRecorder

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


async def test_the_warning_is_news_on_the_session_event_stream_once(lab: Lab) -> None:
    manager = lab.manager()
    await _policy(lab, idle_timeout_s=100)
    session_id = await _running(lab, manager)
    limits = manager.core.recovery._limits
    assert limits is not None
    started = await _started(lab, session_id)
    with manager.core.hub.subscribe() as subscription:
        await limits.run_once(started + timedelta(seconds=85))  # past 0.8 × 100 s (the 5 min window is wider)
        await limits.run_once(started + timedelta(seconds=90))  # warned already: no second warning
        events = [subscription.queue.get_nowait() for _ in range(subscription.queue.qsize())]
    warnings = [e for e in events if isinstance(e, SessionProgressEvent) and e.session_id == session_id]
    assert [w.reason.split(";")[0] for w in warnings] == ["idle warning: idle for 1m 25s"]
    assert "terminated in about 15s unless it is used" in warnings[0].reason
    assert await lab.status(session_id) == "RUNNING"


async def test_the_strictest_of_the_owners_and_the_projects_policy_applies(lab: Lab) -> None:
    manager = lab.manager()
    await _policy(lab, max_session_lifetime_s=7200)
    session_id = await _running(lab, manager, type="batch", command=["sleep", "1d"])
    async with lab.sessionmaker() as db:
        db.add(ResourcePolicy(name="short", max_slots={}, created_at=utcnow(), max_session_lifetime_s=60))
        project = Project(id=new_id(), name="vision", created_at=utcnow(), resource_policy="short")
        db.add(project)
        await db.flush()
        await db.execute(update(Session).where(Session.id == session_id).values(project_id=project.id))
        await db.commit()
    limits = manager.core.recovery._limits
    assert limits is not None
    started = await _started(lab, session_id)
    assert await limits.run_once(started + timedelta(seconds=61)) == [session_id]
    await manager.settle()
    assert "lifetime limit of 1m reached" in await lab.history_reasons(session_id)
    assert await lab.status(session_id) == "TERMINATED"
    assert lab.agents.containers == {}  # the destroy path removed the container


async def test_the_leaders_recovery_pass_enforces_the_limits(lab: Lab) -> None:
    manager = lab.manager()
    await _policy(lab, max_session_lifetime_s=0.2)
    session_id = await _running(lab, manager, type="batch", command=["sleep", "1d"])
    await asyncio.sleep(0.3)
    await manager.core.recovery.run_once()
    await manager.settle()
    assert await lab.status(session_id) == "TERMINATED"
    assert "lifetime limit of 0.2s reached" in await lab.history_reasons(session_id)


async def test_code_running_and_connection_traffic_move_the_activity_clock(lab: Lab) -> None:
    manager = lab.manager()
    session_id = await _running(lab, manager)
    recorder = AccessRecorder(lab.sessionmaker)

    async def last_activity() -> datetime | None:
        async with lab.sessionmaker() as db:
            return await db.scalar(select(Session.last_activity_at).where(Session.id == session_id))

    async with recorder.in_use(session_id, every_s=0.05):
        await asyncio.sleep(0.2)  # an open connection that carries nothing is no activity
    assert await last_activity() is None
    async with recorder.in_use(session_id, every_s=0.05) as traffic:
        traffic.mark()
        await asyncio.sleep(0.15)
        first = await last_activity()
        assert first is not None
        await asyncio.sleep(0.15)  # nothing since: not moved again
        assert await last_activity() == first
    assert await last_activity() == first
    async with recorder.in_use(session_id, busy=True, every_s=0.05):  # code running: activity all along
        await asyncio.sleep(0.15)
        during = await last_activity()
        assert during is not None and during > first
    ended = await last_activity()
    assert ended is not None and ended > during
