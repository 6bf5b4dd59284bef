"""A pending session as the scheduler sees it: the few columns a pass needs, not the ORM object."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.slots import ResourceSlot

from ..db.models import Session
from ..states import SessionStatus

COLUMNS = (Session.id, Session.owner_id, Session.project_id, Session.type, Session.requested_slots,
           Session.cluster_size, Session.resource_group, Session.created_at, Session.priority,
           Session.status_reason, Session.cluster_mode)


@dataclass(frozen=True)
class PendingSession:
    id: str
    owner_id: str
    project_id: str | None
    type: str
    request: ResourceSlot  # per kernel
    cluster_size: int
    group: str
    created_at: datetime
    priority: int
    status_reason: str
    cluster_mode: str = "single-node"


async def read_pending(db: AsyncSession, limit: int, after: PendingSession | None = None) -> list[PendingSession]:
    """One page of pending sessions, oldest first (keyset paging on (created_at, id))."""
    query = select(*COLUMNS).where(Session.status == SessionStatus.PENDING)
    if after is not None:
        query = query.where(or_(
            Session.created_at > after.created_at,
            and_(Session.created_at == after.created_at, Session.id > after.id),
        ))
    rows = await db.execute(query.order_by(Session.created_at, Session.id).limit(limit))
    return [
        PendingSession(sid, owner, project, kind, ResourceSlot.from_json(slots), size or 1, group, created,
                       priority if priority is not None else 50, reason or "", mode or "single-node")
        for sid, owner, project, kind, slots, size, group, created, priority, reason, mode in rows
    ]


class PendingReader:
    """The queue stage: reads every pending session a page at a time (every group's, none hidden)."""

    async def pending(self, db: AsyncSession, limit: int, after: PendingSession | None = None
                      ) -> Sequence[PendingSession]:
        return await read_pending(db, limit, after)
