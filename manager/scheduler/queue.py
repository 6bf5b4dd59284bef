"""Queue stage: which pending sessions to consider, in what order.

``pending`` returns one page; a pass asks for the next one (``after`` = the last session it saw) while
sessions it looked at could not be placed, so a head of sessions that do not fit never hides the ones
behind them."""
from __future__ import annotations

from typing import Protocol, Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Session
from ..states import SessionStatus


class PendingQueue(Protocol):
    async def pending(self, db: AsyncSession, limit: int, after: Session | None = None) -> Sequence[Session]: ...


class FifoQueue:
    """Oldest first."""

    async def pending(self, db: AsyncSession, limit: int, after: Session | None = None) -> Sequence[Session]:
        query = select(Session).where(Session.status == SessionStatus.PENDING)
        if after is not None:
            query = query.where(or_(
                Session.created_at > after.created_at,
                and_(Session.created_at == after.created_at, Session.id > after.id),
            ))
        return (await db.scalars(query.order_by(Session.created_at, Session.id).limit(limit))).all()


class LifoQueue:
    """Newest first."""

    async def pending(self, db: AsyncSession, limit: int, after: Session | None = None) -> Sequence[Session]:
        query = select(Session).where(Session.status == SessionStatus.PENDING)
        if after is not None:
            query = query.where(or_(
                Session.created_at < after.created_at,
                and_(Session.created_at == after.created_at, Session.id < after.id),
            ))
        return (await db.scalars(
            query.order_by(Session.created_at.desc(), Session.id.desc()).limit(limit)
        )).all()
