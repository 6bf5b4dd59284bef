"""Agent presence: heartbeats in, lost agents out, and reconciliation of the
kernels an agent reports with what the database expects."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from corral.common.node_resources import NodeCapacity

from .context import ManagerContext
from .db.models import Agent, Kernel, Session, SessionStatusChange
from .kernel_events import mark_kernel_ended, mark_kernel_running, recalc_occupied
from .leader import LeaderElection
from .states import ACTIVE, AgentStatus, SessionStatus
from .status_recorder import record_status, utcnow

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


class AgentRegistry:
    def __init__(self, ctx: ManagerContext, leader: LeaderElection) -> None:
        self.ctx = ctx
        self.leader = leader
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    # Heartbeats -----------------------------------------------------------------
    async def heartbeat(self, hb: Heartbeat) -> dict[str, Any]:
        """Record a heartbeat; answer with the kernels the agent should destroy."""
        try:
            capacity_changed = await self._record_heartbeat(hb)
        except IntegrityError:
            # Two first heartbeats raced to insert the agent; the row exists now.
            capacity_changed = await self._record_heartbeat(hb)
        destroy = await self._reconcile(hb)
        if capacity_changed:
            self.ctx.scheduler.trigger()  # pending sessions may fit now
        return {"destroy": destroy}

    async def _record_heartbeat(self, hb: Heartbeat) -> bool:
        now = utcnow()
        capacity = NodeCapacity.from_json(hb.capacity)
        async with self.ctx.sessionmaker() as db:
            agent = await db.get(Agent, hb.agent_id)
            capacity_changed = agent is None or agent.status != AgentStatus.ALIVE or agent.capacity != capacity.to_json()
            if agent is None:
                agent = Agent(
                    id=hb.agent_id, status=AgentStatus.ALIVE, first_contact=now, occupied_slots={},
                    address=hb.address, capacity={}, available_slots={}, images=[], last_heartbeat=now,
                )
                db.add(agent)
                log.info("agent %s joined from %s with %s", hb.agent_id, hb.address, capacity.slots())
            elif agent.status != AgentStatus.ALIVE:
                log.info("agent %s is back (was %s)", hb.agent_id, agent.status)
                agent.status = AgentStatus.ALIVE
                agent.status_reason = "heartbeat resumed"
            agent.address = hb.address
            agent.resource_group = hb.resource_group
            agent.version = hb.version
            agent.capacity = capacity.to_json()
            agent.available_slots = capacity.slots().to_json()
            agent.images = hb.images
            agent.last_heartbeat = now
            await db.commit()
        return capacity_changed

    async def _reconcile(self, hb: Heartbeat) -> list[str]:
        reported = {k.kernel_id: k for k in hb.kernels}
        grace = timedelta(seconds=self.ctx.config.agents.heartbeat_timeout_s)
        destroy: list[str] = []
        vanished: list[tuple[str, bool]] = []
        came_up: list[tuple[str, str | None]] = []
        async with self.ctx.sessionmaker() as db:
            # One query for the agent's live kernels with their sessions' status.
            rows = (
                await db.execute(
                    select(Kernel, Session.status)
                    .join(Session, Session.id == Kernel.session_id)
                    .where(Kernel.agent_id == hb.agent_id, Kernel.status.in_(list(ACTIVE)))
                )
            ).all()
            for kernel, session_status in rows:
                report = reported.get(kernel.id)
                if report is None:
                    if utcnow() - kernel.status_changed_at > grace and kernel.status != SessionStatus.SCHEDULED:
                        vanished.append((kernel.id, kernel.status == SessionStatus.RUNNING))
                elif report.status == "running" and kernel.status == SessionStatus.PREPARING:
                    came_up.append((kernel.id, report.container_id))
                elif session_status == SessionStatus.TERMINATING and await self._termination_stalled(db, kernel, grace):
                    destroy.append(kernel.id)
            known_ids = {kernel.id for kernel, _ in rows}
            restored = False
            for kernel_id, report in reported.items():
                if kernel_id in known_ids:
                    continue
                kernel = await db.get(Kernel, kernel_id)
                if kernel is not None and kernel.status == SessionStatus.ERROR and kernel.status_reason.startswith(AGENT_LOST_PREFIX):
                    await self._restore(db, kernel, hb.agent_id)
                    restored = True
                else:
                    destroy.append(kernel_id)
            if restored:
                await db.flush()
                await recalc_occupied(db, hb.agent_id)
            await db.commit()
        for kernel_id, container_id in came_up:
            await mark_kernel_running(self.ctx, kernel_id, container_id)
        for kernel_id, was_running in vanished:
            reason = f"container vanished from agent {hb.agent_id}"
            await mark_kernel_ended(self.ctx, kernel_id, None, reason, None, failed=was_running)
        if destroy:
            log.info("asking agent %s to remove orphaned or terminating kernels: %s", hb.agent_id, destroy)
        return destroy

    @staticmethod
    async def _termination_stalled(db: Any, kernel: Kernel, grace: timedelta) -> bool:
        """A destroy that did not reach the agent a while ago: ask again (not while one is in flight)."""
        last = await db.scalar(
            select(SessionStatusChange.at)
            .where(SessionStatusChange.session_id == kernel.session_id)
            .order_by(SessionStatusChange.id.desc())
            .limit(1)
        )
        return last is not None and utcnow() - last > grace

    async def _restore(self, db: Any, kernel: Kernel, agent_id: str) -> None:
        sess = await db.get(Session, kernel.session_id)
        kernel.status = SessionStatus.RUNNING
        kernel.status_reason = ""
        kernel.status_changed_at = utcnow()
        if sess is not None and sess.status == SessionStatus.ERROR:
            sess.terminated_at = None
            record_status(db, self.ctx.hub, sess, SessionStatus.RUNNING, f"agent {agent_id} is back; kernel re-attached")
        log.info("kernel %s re-attached after agent %s came back", kernel.id, agent_id)

    # Lost agents ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch_lost(), name="agent-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch_lost(self) -> None:
        timeout = self.ctx.config.agents.heartbeat_timeout_s
        while True:
            await asyncio.sleep(min(2.0, timeout / 3))
            # Right after start-up agents have not had a chance to reach us yet.
            if not self.leader.is_leader or time.monotonic() - self._started < timeout:
                continue
            try:
                await self.mark_lost_agents(timeout)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checking for lost agents failed")

    async def mark_lost_agents(self, timeout: float) -> list[str]:
        cutoff = utcnow() - timedelta(seconds=timeout)
        lost: list[str] = []
        async with self.ctx.sessionmaker() as db:
            agents = (
                await db.scalars(select(Agent).where(Agent.status == AgentStatus.ALIVE, Agent.last_heartbeat < cutoff))
            ).all()
            for agent in agents:
                reason = f"{AGENT_LOST_PREFIX}: no heartbeat from {agent.id} for {timeout:.0f} s"
                agent.status = AgentStatus.LOST
                agent.status_reason = reason
                lost.append(agent.id)
                log.warning("%s", reason)
                kernels = (
                    await db.scalars(select(Kernel).where(Kernel.agent_id == agent.id, Kernel.status.in_(list(ACTIVE))))
                ).all()
                for kernel in kernels:
                    kernel.status = SessionStatus.ERROR
                    kernel.status_reason = reason
                    kernel.status_changed_at = utcnow()
                    sess = await db.get(Session, kernel.session_id)
                    if sess is not None and sess.status in ACTIVE:
                        record_status(db, self.ctx.hub, sess, SessionStatus.ERROR, reason)
                await db.flush()
                await recalc_occupied(db, agent.id)
            await db.commit()
        return lost
