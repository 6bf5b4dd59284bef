"""The leader re-drives every intermediate session state, so none is left in silence.

Right after taking the lead and then every ``[lifecycle] interval_s``:

| state | after | what happens |
|---|---|---|
| SCHEDULED | ``bind_retry_s`` (at once after taking the lead) | bound again (guarded: only once) |
| PREPARING | ``prepare_retry_s`` | creation sent to the agent again (idempotent there) |
| PREPARING | ``prepare_timeout_s`` | containers removed, session ``ERROR`` with the reason |
| TERMINATING | ``terminate_retry_s`` | the agent asked again to remove the containers |
| RUNNING on a LOST agent | ``lost_grace_s`` since its last heartbeat | session ``ERROR`` |
| RUNNING past its policy's lifetime or idle limit | — | terminated with that reason (`limits`) |

An unreachable agent sends its starting sessions back to the queue (`Binder`);
an agent that says it no longer has a starting kernel does too (`AgentRegistry`).
PENDING has no timeout: a pending session always says why it waits.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.session_status import SessionStatus

from ..clock import utcnow
from ..config import LifecycleConfig
from ..db.models import Agent, Kernel, Session
from ..leader import LeaderElection
from ..scheduler.bind import Binder
from ..states import AgentStatus
from .kernel_events import KernelEvents
from .limits import LimitSweep
from .terminator import Terminator

log = logging.getLogger(__name__)


class Recovery:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        leader: LeaderElection,
        binder: Binder,
        terminator: Terminator,
        kernel_events: KernelEvents,
        config: LifecycleConfig,
        limits: LimitSweep | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._leader = leader
        self._binder = binder
        self._terminator = terminator
        self._kernel_events = kernel_events
        self._config = config
        self._limits = limits
        self._last_try: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="lifecycle-recovery")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        was_leader = False
        while True:
            leading = self._leader.is_leader
            if leading:
                try:
                    await self.run_once(just_took_lead=not was_leader)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("lifecycle recovery pass failed; retrying in %.0f s", self._config.interval_s)
            was_leader = leading
            await asyncio.sleep(self._config.interval_s)

    async def run_once(self, *, just_took_lead: bool = False) -> None:
        now = utcnow()
        cfg = self._config
        bind_cutoff = now if just_took_lead else now - timedelta(seconds=cfg.bind_retry_s)
        async with self._sessionmaker() as db:
            scheduled = await _in_status_since(db, SessionStatus.SCHEDULED, bind_cutoff)
            preparing = await _in_status_since(db, SessionStatus.PREPARING, now - timedelta(seconds=cfg.prepare_retry_s))
            terminating = await _in_status_since(
                db, SessionStatus.TERMINATING, now - timedelta(seconds=cfg.terminate_retry_s)
            )
            stranded = (
                await db.execute(
                    select(Kernel.id, Kernel.agent_id)
                    .join(Agent, Agent.id == Kernel.agent_id)
                    .join(Session, Session.id == Kernel.session_id)
                    .where(
                        Agent.status == AgentStatus.LOST,
                        Agent.last_heartbeat < now - timedelta(seconds=cfg.lost_grace_s),
                        Session.status == SessionStatus.RUNNING,
                        Kernel.status == SessionStatus.RUNNING,
                    )
                )
            ).all()
        timeout = timedelta(seconds=cfg.prepare_timeout_s)
        for session_id, _ in scheduled:
            if session_id not in self._binder.in_flight:
                log.info("session %s was left SCHEDULED; binding it again", session_id)
                self._binder.spawn(session_id)
        for session_id, since in preparing:
            if now - since > timeout:
                reason = f"did not start within {cfg.prepare_timeout_s:.0f} s"
                self._terminator.spawn_fail_start(session_id, reason)
            elif session_id not in self._binder.in_flight and self._due(session_id, cfg.prepare_retry_s):
                self._binder.spawn_redrive(session_id)
        for session_id, _ in terminating:
            if session_id not in self._terminator.in_flight and self._due(session_id, cfg.terminate_retry_s):
                log.info("session %s still TERMINATING; asking its agents again", session_id)
                self._terminator.spawn(session_id)
        for kernel_id, agent_id in stranded:
            await self._kernel_events.ended(
                kernel_id, None, f"agent {agent_id} lost for more than {cfg.lost_grace_s:.0f} s", None, failed=True
            )
        self._forget_settled({sid for sid, _ in (*preparing, *terminating)})
        if self._limits is not None:
            await self._limits.run_once(now)

    def _due(self, session_id: str, every_s: float) -> bool:
        now = time.monotonic()
        if now - self._last_try.get(session_id, float("-inf")) < every_s:
            return False
        self._last_try[session_id] = now
        return True

    def _forget_settled(self, still_there: set[str]) -> None:
        for session_id in [s for s in self._last_try if s not in still_there]:
            del self._last_try[session_id]


async def _in_status_since(db: AsyncSession, status: SessionStatus, cutoff: datetime) -> list[tuple[str, datetime]]:
    rows = await db.execute(
        select(Session.id, Session.status_changed_at)
        .where(Session.status == status, Session.status_changed_at <= cutoff)
        .order_by(Session.status_changed_at)
        .limit(1000)
    )
    return [(sid, since) for sid, since in rows.all()]
