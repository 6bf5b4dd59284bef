"""Session state transitions: stored with time and reason, published after commit."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as OrmSession

from .db.models import Session, SessionStatusChange
from .events import EventHub, SessionStatusEvent
from .states import SessionStatus

_PENDING_KEY = "corral.pending_events"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def record_status(db: AsyncSession, hub: EventHub, sess: Session, status: SessionStatus, reason: str) -> None:
    """Move ``sess`` to ``status``; the event goes out once the transaction commits."""
    now = utcnow()
    sess.status = status
    sess.status_reason = reason
    if status == SessionStatus.SCHEDULED:
        sess.scheduled_at = now
    elif status == SessionStatus.RUNNING and sess.started_at is None:
        sess.started_at = now
    elif status in (SessionStatus.TERMINATED, SessionStatus.ERROR, SessionStatus.CANCELLED):
        sess.terminated_at = now
    db.add(SessionStatusChange(session_id=sess.id, status=status, reason=reason, at=now))
    db.sync_session.info.setdefault(_PENDING_KEY, []).append(
        (hub, SessionStatusEvent(sess.id, sess.owner_id, status, reason, now))
    )


@event.listens_for(OrmSession, "after_commit")
def _publish_after_commit(session: OrmSession) -> None:
    for hub, status_event in session.info.pop(_PENDING_KEY, []):
        hub.publish(status_event)


@event.listens_for(OrmSession, "after_rollback")
def _drop_after_rollback(session: OrmSession) -> None:
    session.info.pop(_PENDING_KEY, None)
