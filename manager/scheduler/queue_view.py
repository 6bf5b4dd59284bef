"""The queue as the scheduler would consider it now (``GET /api/v1/queue``, ``corral queue``).

A dry run of a pass on a snapshot of its own, built from the database: any manager can answer (not
only the leader), and nothing it decides is taken. The head keeps its reservation through the
reason the leader's last pass gave it, so the dry run sees the same head.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..clock import utcnow
from ..config import SchedulerConfig
from ..db.models import Session, User
from .contexts import DecayedUsage
from .groups import load_groups
from .pass_inputs import plan_pass
from .pending import read_pending
from .snapshot import ClusterSnapshot

PAGE = 1000


async def queue_view(db: AsyncSession, now: datetime, config: SchedulerConfig, decayed: DecayedUsage | None,
                     group: str | None = None) -> list[dict[str, Any]]:
    pending = []
    page = await read_pending(db, PAGE)
    pending.extend(page)
    while len(page) == PAGE:
        page = await read_pending(db, PAGE, after=page[-1])
        pending.extend(page)
    if group is not None:
        pending = [s for s in pending if s.group == group]
    if not pending:
        return []
    snapshot = ClusterSnapshot()
    await snapshot.refresh(db, now)
    plan = await plan_pass(db, now, pending, snapshot, config, decayed)
    ids = [s.id for s in pending]
    names = dict((await db.execute(select(Session.id, Session.name).where(Session.id.in_(ids)))).all())
    owners = dict((await db.execute(
        select(User.id, User.username).where(User.id.in_({s.owner_id for s in pending}))
    )).all())
    rows = await load_groups(db)
    groups = []
    for name, entries in sorted(plan.queues.items()):
        known = rows.get(name)
        settings = ({"queue_policy": known.queue_policy, "backfill": known.backfill} if known is not None
                    else {"queue_policy": config.queue, "backfill": True})
        head = plan.reservations.get(name)
        groups.append({
            "group": name, **settings,
            "entries": [
                {
                    "position": e.position, "session_id": e.session.id, "name": names.get(e.session.id, ""),
                    "owner": owners.get(e.session.owner_id, e.session.owner_id), "type": e.session.type,
                    "requested_slots": {k: str(v) for k, v in e.session.request.items()},
                    "priority": e.session.priority, "created_at": e.session.created_at,
                    "factors": e.factors, "reason": e.reason if not e.placed_on else "",
                    "would_start_on": e.placed_on,
                }
                for e in entries
            ],
            "head_reservation": (
                {"session_id": head.session_id, "agent_id": head.agent_id, "start_at": head.start_at}
                if head is not None else None
            ),
        })
    return groups



class QueueViewer:
    """What ``GET /api/v1/queue`` answers with, on any manager."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], config: SchedulerConfig,
                 decayed: DecayedUsage | None) -> None:
        self._sessionmaker = sessionmaker
        self._config = config
        self._decayed = decayed

    async def view(self, group: str | None = None) -> list[dict[str, Any]]:
        async with self._sessionmaker() as db:
            return await queue_view(db, utcnow(), self._config, self._decayed, group)
