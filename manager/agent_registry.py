"""Agent presence: heartbeats in, lost agents out, and reconciliation of the
kernels an agent reports with what the database expects.

A lost agent (no heartbeat for ``heartbeat_timeout_s``) is marked ``LOST``:
its sessions that were still starting go back to the queue; its running
sessions keep running, saying so, for ``[lifecycle] lost_grace_s`` (then they
fail, see `Recovery`); if it returns with their containers they carry on.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.node_resources import NodeCapacity

from .clock import utcnow
from .config import AgentsConfig
from .db.models import Agent, Kernel, Session
from .leader import LeaderElection
from .lifecycle.kernel_events import KernelEvents
from .lifecycle.moves import set_reason
from .lifecycle.terminator import Terminator
from .lifecycle.transitions import STARTING
from .resource_groups import ensure_group
from .scheduler.bind import Binder
from .scheduler.wakeup import Wakeup
from .states import ACTIVE, AgentStatus, SessionStatus

log = logging.getLogger(__name__)

AGENT_LOST_PREFIX = "agent lost"


class ReportedKernel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kernel_id: str
    session_id: str
    status: str  # "preparing" | "running"
    container_id: str | None = None


class Heartbeat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str
    address: str
    resource_group: str = "default"
    version: str = ""
    capacity: dict[str, Any]
    images: list[dict[str, Any]] = []
    kernels: list[ReportedKernel] = []
    # What running kernels hold beyond the agent's capacity now (it restarted with fewer resources).
    overcommitted: list[str] = []


OVERCOMMITTED_PREFIX = "overcommitted"


def _note_overcommit(agent: Agent, hb: Heartbeat) -> None:
    """Keep the agent's ``status_reason`` saying it is overcommitted while its heartbeat says so."""
    if hb.overcommitted:
        reason = f"{OVERCOMMITTED_PREFIX}: " + "; ".join(hb.overcommitted)
        if agent.status_reason != reason:
            log.warning("agent %s is %s", hb.agent_id, reason)
        agent.status_reason = reason
    elif (agent.status_reason or "").startswith(OVERCOMMITTED_PREFIX):
        agent.status_reason = ""


class AgentRegistry:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        leader: LeaderElection,
        kernel_events: KernelEvents,
        binder: Binder,
        terminator: Terminator,
        wakeup: Wakeup,
        config: AgentsConfig,
        lost_grace_s: float,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._leader = leader
        self._kernel_events = kernel_events
        self._binder = binder
        self._terminator = terminator
        self._wakeup = wakeup
        self._config = config
        self._lost_grace_s = lost_grace_s
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    # Heartbeats -----------------------------------------------------------------
    async def heartbeat(self, hb: Heartbeat) -> dict[str, Any]:
        """Record a heartbeat; answer with the kernels the agent should destroy."""
        try:
            capacity_changed, returned = await self._record_heartbeat(hb)
        except IntegrityError:
            # Two first heartbeats raced to insert the agent; the row exists now.
            capacity_changed, returned = await self._record_heartbeat(hb)
        destroy = await self._reconcile(hb, returned)
        if capacity_changed:
            self._wakeup.trigger()  # pending sessions may fit now
        return {"destroy": destroy}

    async def _record_heartbeat(self, hb: Heartbeat) -> tuple[bool, bool]:
        """(capacity changed, agent came back from LOST)."""
        now = utcnow()
        capacity = NodeCapacity.from_json(hb.capacity)
        async with self._sessionmaker() as db:
            agent = await db.get(Agent, hb.agent_id, with_for_update=True)
            returned = agent is not None and agent.status != AgentStatus.ALIVE
            capacity_changed = agent is None or returned or agent.capacity != capacity.to_json()
            if agent is None:
                agent = Agent(
                    id=hb.agent_id, status=AgentStatus.ALIVE, first_contact=now, occupied_slots={},
                    address=hb.address, capacity={}, available_slots={}, images=[], last_heartbeat=now,
                )
                db.add(agent)
                log.info("agent %s joined from %s with %s", hb.agent_id, hb.address, capacity.slots())
            elif returned:
                log.info("agent %s is back (was %s)", hb.agent_id, agent.status)
                agent.status = AgentStatus.ALIVE
                agent.status_reason = "heartbeat resumed"
            if agent.resource_group != hb.resource_group or capacity_changed:
                await ensure_group(db, hb.resource_group, f"agent {hb.agent_id} registered in it")
            agent.address = hb.address
            agent.resource_group = hb.resource_group
            agent.version = hb.version
            agent.capacity = capacity.to_json()
            agent.available_slots = capacity.slots().to_json()
            agent.images = hb.images
            agent.last_heartbeat = now
            _note_overcommit(agent, hb)
            await db.commit()
        return capacity_changed, returned

    async def _reconcile(self, hb: Heartbeat, returned: bool) -> list[str]:
        reported = {k.kernel_id: k for k in hb.kernels}
        grace = timedelta(seconds=self._config.heartbeat_timeout_s)
        now = utcnow()
        vanished: list[tuple[str, bool]] = []
        not_there: list[str] = []
        came_up: list[tuple[str, str | None]] = []
        back: list[str] = []
        async with self._sessionmaker() as db:
            # One query for the agent's live kernels with their sessions' status.
            rows = (
                await db.execute(
                    select(Kernel.id, Kernel.status, Kernel.status_changed_at, Session.id, Session.status)
                    .join(Session, Session.id == Kernel.session_id)
                    .where(Kernel.agent_id == hb.agent_id, Kernel.status.in_(list(ACTIVE)))
                )
            ).all()
        for kernel_id, kernel_status, changed_at, session_id, session_status in rows:
            report = reported.get(kernel_id)
            if report is None:
                if kernel_status == SessionStatus.SCHEDULED or now - changed_at <= grace:
                    continue  # not asked for yet, or asked for a moment ago
                if kernel_status == SessionStatus.PREPARING and session_status == SessionStatus.PREPARING:
                    not_there.append(session_id)
                else:
                    failed = kernel_status == SessionStatus.RUNNING and session_status == SessionStatus.RUNNING
                    vanished.append((kernel_id, failed))
            elif report.status == "running" and kernel_status == SessionStatus.PREPARING:
                came_up.append((kernel_id, report.container_id))
            elif returned and session_status == SessionStatus.RUNNING:
                back.append(session_id)
        known = {row[0] for row in rows}
        destroy = [kernel_id for kernel_id in reported if kernel_id not in known]
        for kernel_id, container_id in came_up:
            await self._kernel_events.running(kernel_id, container_id, agent_id=hb.agent_id)
        for kernel_id, failed in vanished:
            await self._kernel_events.ended(
                kernel_id, None, f"container vanished from agent {hb.agent_id}", None, failed=failed,
                agent_id=hb.agent_id,
            )
        for session_id in not_there:
            await self._binder.requeue(
                session_id, f"agent {hb.agent_id} does not have the container it was asked for; back in the queue"
            )
        if back:
            async with self._sessionmaker() as db:
                for session_id in back:
                    await set_reason(db, session_id, f"agent {hb.agent_id} is back", while_in={SessionStatus.RUNNING})
                await db.commit()
        if destroy:
            log.info("asking agent %s to remove kernels nobody wants: %s", hb.agent_id, destroy)
        return destroy

    # Lost agents ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch_lost(), name="agent-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch_lost(self) -> None:
        timeout = self._config.heartbeat_timeout_s
        while True:
            await asyncio.sleep(min(2.0, timeout / 3))
            # Right after start-up agents have not had a chance to reach us yet.
            if not self._leader.is_leader or time.monotonic() - self._started < timeout:
                continue
            try:
                await self.mark_lost_agents(timeout)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checking for lost agents failed")

    async def mark_lost_agents(self, timeout: float) -> list[str]:
        cutoff = utcnow() - timedelta(seconds=timeout)
        reason_of: dict[str, str] = {}
        async with self._sessionmaker() as db:
            candidates = (
                await db.scalars(select(Agent.id).where(Agent.status == AgentStatus.ALIVE, Agent.last_heartbeat < cutoff))
            ).all()
            for agent_id in candidates:
                reason = f"{AGENT_LOST_PREFIX}: no heartbeat from {agent_id} for {timeout:.0f} s"
                # Guarded: a heartbeat that landed meanwhile keeps the agent ALIVE.
                result = await db.execute(
                    update(Agent)
                    .where(Agent.id == agent_id, Agent.status == AgentStatus.ALIVE, Agent.last_heartbeat < cutoff)
                    .values(status=AgentStatus.LOST, status_reason=reason)
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    reason_of[agent_id] = reason
            await db.commit()
        for agent_id, reason in reason_of.items():
            log.warning("%s", reason)
            await self._settle_sessions_of_lost(agent_id, reason)
        return list(reason_of)

    async def _settle_sessions_of_lost(self, agent_id: str, reason: str) -> None:
        async with self._sessionmaker() as db:
            rows = (
                await db.execute(
                    select(Session.id, Session.status)
                    .join(Kernel, Kernel.session_id == Session.id)
                    .where(Kernel.agent_id == agent_id, Kernel.status.in_(list(ACTIVE)))
                    .distinct()
                )
            ).all()
        grace = f"waiting up to {self._lost_grace_s:.0f} s for it to come back"
        for session_id, status in rows:
            if status in STARTING:
                await self._binder.requeue(session_id, f"{reason} before the session started; back in the queue")
            elif status == SessionStatus.TERMINATING:
                self._terminator.spawn(session_id)
            elif status == SessionStatus.RUNNING:
                async with self._sessionmaker() as db:
                    await set_reason(db, session_id, f"{reason}; {grace}", while_in={SessionStatus.RUNNING})
                    await db.commit()
