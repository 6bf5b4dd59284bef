"""Queue stage: which pending sessions to consider, in what order."""
from __future__ import annotations

from typing import Protocol, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Session
from ..states import SessionStatus


class PendingQueue(Protocol):
    async def pending(self, db: AsyncSession, limit: int) -> Sequence[Session]: ...


class FifoQueue:
    """Oldest first."""

    async def pending(self, db: AsyncSession, limit: int) -> Sequence[Session]:
        query = (
            select(Session)
            .where(Session.status == SessionStatus.PENDING)
            .order_by(Session.created_at, Session.id)
            .limit(limit)
        )
        return (await db.scalars(query)).all()


class LifoQueue:
    """Newest first."""

    async def pending(self, db: AsyncSession, limit: int) -> Sequence[Session]:
        query = (
            select(Session)
            .where(Session.status == SessionStatus.PENDING)
            .order_by(Session.created_at.desc(), Session.id.desc())
            .limit(limit)
        )
        return (await db.scalars(query)).all()
