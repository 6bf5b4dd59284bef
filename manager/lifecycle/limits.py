"""Lifetime and idle limits of resource policies, enforced by the leader every ``[lifecycle] interval_s``.

- A RUNNING session older (since it started) than the strictest ``max_session_lifetime_s`` of its
  owner's and project's policies is terminated: "lifetime limit of 2h 0m reached".
- An *interactive* RUNNING session idle for the strictest ``idle_timeout_s`` is terminated: "idle for
  30m (idle timeout)". Idle time counts from its last activity (``sessions.last_activity_at``: terminal,
  tunnel, app and SSH traffic, code execution, interrupts), or from its start when it never had any.
  Before that, once idle for ``max(timeout − idle_warning_s, 0.8 × timeout)``, it is warned once: its
  reason says when it will be terminated (``corral session info`` shows it) and its event stream gets a
  ``progress`` event saying so (``corral session events``); activity clears the warning.
- Batch sessions are never idle-culled (their command is the work).

One query finds every RUNNING session held to either limit (policies joined through users and
projects), whatever the number of sessions.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from corral.common.session_status import SessionStatus

from ..clock import utcnow
from ..db.models import Project, ResourcePolicy, Session, User
from ..events import EventHub, SessionProgressEvent
from .moves import move_sessions, set_reason
from .terminator import Terminator

log = logging.getLogger(__name__)

IDLE_WARNING = "idle warning:"
RUNNING_REASON = "in use again (the idle warning is cleared)"


def human_duration(seconds: float) -> str:
    """``2h 0m``, ``30m``, ``1m 40s``, ``45s`` (``0.2s`` for limits under 10 s, as tests set)."""
    if seconds < 10 and seconds != int(seconds):
        return f"{round(seconds, 1):g}s"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m" if not secs else f"{minutes}m {secs}s"
    return f"{secs}s"


def _strictest(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


@dataclass(frozen=True)
class Held:
    session_id: str
    owner_id: str
    type: str
    started_at: datetime | None
    last_activity_at: datetime | None
    status_reason: str
    lifetime_s: float | None
    idle_s: float | None


class LimitSweep:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], hub: EventHub, terminator: Terminator,
                 idle_warning_s: float) -> None:
        self._sessionmaker = sessionmaker
        self._hub = hub
        self._terminator = terminator
        self._idle_warning_s = idle_warning_s

    async def run_once(self, now: datetime | None = None) -> list[str]:
        """Apply the limits; the ids of the sessions terminated."""
        now = now or utcnow()
        async with self._sessionmaker() as db:
            held = await _held(db)
        over: dict[str, str] = {}
        for entry in held:
            reason = self._over(entry, now)
            if reason is not None:
                over[entry.session_id] = reason
            else:
                await self._warn_or_clear(entry, now)
        return await self._terminate(over)

    def _over(self, entry: Held, now: datetime) -> str | None:
        if entry.lifetime_s is not None and entry.started_at is not None:
            if (now - entry.started_at).total_seconds() >= entry.lifetime_s:
                return f"lifetime limit of {human_duration(entry.lifetime_s)} reached"
        idle = self._idle_for(entry, now)
        if entry.idle_s is not None and idle is not None and idle >= entry.idle_s:
            return f"idle for {human_duration(idle)} (idle timeout)"
        return None

    def _idle_for(self, entry: Held, now: datetime) -> float | None:
        if entry.type != "interactive":
            return None
        since = entry.last_activity_at or entry.started_at
        if since is None:
            return None
        if entry.started_at is not None and since < entry.started_at:
            since = entry.started_at
        return max(0.0, (now - since).total_seconds())

    async def _warn_or_clear(self, entry: Held, now: datetime) -> None:
        idle = self._idle_for(entry, now)
        if entry.idle_s is None or idle is None:
            return
        warn_at = max(entry.idle_s - self._idle_warning_s, 0.8 * entry.idle_s)
        warned = entry.status_reason.startswith(IDLE_WARNING)
        if idle >= warn_at and not warned:
            left = entry.idle_s - idle
            reason = (f"{IDLE_WARNING} idle for {human_duration(idle)}; it will be terminated in about "
                      f"{human_duration(left)} unless it is used (idle timeout {human_duration(entry.idle_s)})")
            async with self._sessionmaker() as db:
                changed = await set_reason(db, entry.session_id, reason, while_in={SessionStatus.RUNNING})
                await db.commit()
            if changed:
                log.info("session %s: %s", entry.session_id, reason)
                self._hub.publish(SessionProgressEvent(entry.session_id, entry.owner_id, SessionStatus.RUNNING,
                                                       reason, now))
        elif idle < warn_at and warned:
            async with self._sessionmaker() as db:
                await set_reason(db, entry.session_id, RUNNING_REASON, while_in={SessionStatus.RUNNING})
                await db.commit()

    async def _terminate(self, reasons: dict[str, str]) -> list[str]:
        """RUNNING → TERMINATING for each (guarded: one that ended meanwhile is skipped), then the usual
        destroy path removes the containers; the ids that moved."""
        if not reasons:
            return []
        async with self._sessionmaker() as db:
            moved = await move_sessions(db, self._hub, reasons, SessionStatus.TERMINATING,
                                        only_from={SessionStatus.RUNNING})
            await db.commit()
        for session_id in moved:
            log.info("session %s terminated: %s", session_id, reasons[session_id])
            self._terminator.spawn(session_id)
        return moved


async def _held(db: AsyncSession) -> list[Held]:
    user_policy = aliased(ResourcePolicy)
    project_policy = aliased(ResourcePolicy)
    rows = await db.execute(
        select(Session.id, Session.owner_id, Session.type, Session.started_at, Session.last_activity_at, Session.status_reason,
               user_policy.max_session_lifetime_s, user_policy.idle_timeout_s,
               project_policy.max_session_lifetime_s, project_policy.idle_timeout_s)
        .join(User, User.id == Session.owner_id)
        .outerjoin(user_policy, user_policy.name == User.resource_policy)
        .outerjoin(Project, Project.id == Session.project_id)
        .outerjoin(project_policy, project_policy.name == Project.resource_policy)
        .where(Session.status == SessionStatus.RUNNING,
               or_(user_policy.max_session_lifetime_s.is_not(None), user_policy.idle_timeout_s.is_not(None),
                   project_policy.max_session_lifetime_s.is_not(None), project_policy.idle_timeout_s.is_not(None)))
    )
    return [
        Held(sid, owner, kind, started, active, reason or "", _strictest(ul, pl), _strictest(ui, pi))
        for sid, owner, kind, started, active, reason, ul, ui, pl, pi in rows
    ]
