"""Preempting a running batch session for a higher-priority one, and what a destroy meanwhile does.

The scheduler decides (`scheduler.planner`, only in a resource group with ``preemption`` on); here are
the writes, each a guarded move:

1. `preempt_sessions`: ``RUNNING → TERMINATING`` with the reason "preempted by session X (priority P > Q)".
   That reason (`transitions.PREEMPTED_MARK`) is the durable record of the intent: whichever manager
   sees the kernels end, now or after a crash, reads it there. The terminator then removes the
   containers as for any destroy.
2. When a kernel of such a session has ended, `KernelEvents.ended` moves the kernel back to ``PENDING``
   (placement released, a new id, as `Binder.requeue` does) and, once none is left on an agent, the
   session ``TERMINATING → PENDING`` with "…; back in the queue": it starts again later from its command.
3. `stop_preemption`: a destroy while the session is being preempted rewrites the reason, so the guarded
   ``TERMINATING → PENDING`` no longer applies: the session ends TERMINATED (or CANCELLED if it was
   already back in the queue), it never comes back.
"""
from __future__ import annotations

from typing import Mapping

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.session_status import SessionStatus

from ..db.models import Session
from ..events import EventHub
from .moves import move_kernels, move_sessions, record_status
from .transitions import PREEMPTED_MARK, is_preempting

__all__ = ["PREEMPTED_MARK", "is_preempting", "preempt_reason", "requeue_reason", "preempt_sessions",
           "stop_preemption"]

PREEMPTABLE_TYPE = "batch"  # interactive sessions are never preempted


def preempt_reason(by_session: str, by_priority: int, victim_priority: int) -> str:
    return f"{PREEMPTED_MARK}{by_session} (priority {by_priority} > {victim_priority})"


def requeue_reason(preempting_reason: str) -> str:
    return f"{preempting_reason}; back in the queue"


async def preempt_sessions(db: AsyncSession, hub: EventHub, reasons: Mapping[str, str]) -> list[str]:
    """``RUNNING → TERMINATING`` for each running batch session of ``reasons`` (id → reason, starting with
    `PREEMPTED_MARK`); the ids that moved (one destroyed or ended meanwhile is left alone)."""
    if not reasons:
        return []
    assert all(reason.startswith(PREEMPTED_MARK) for reason in reasons.values())
    batch = set((await db.scalars(
        select(Session.id).where(Session.id.in_(list(reasons)), Session.type == PREEMPTABLE_TYPE)
    )).all())
    return await move_sessions(db, hub, {sid: r for sid, r in reasons.items() if sid in batch},
                               SessionStatus.TERMINATING, only_from={SessionStatus.RUNNING})


async def stop_preemption(db: AsyncSession, hub: EventHub, session_id: str, reason: str) -> bool:
    """A destroy (``reason``) of a session being preempted: from now on the end of its kernels ends it.

    One guarded UPDATE of the reason (only while it is TERMINATING with the mark), so it is ordered
    against the kernel end that would requeue it: whichever commits first decides. Kernels already back in
    the queue (a cluster session, part-way) are cancelled. False when the session was not being preempted
    (any more): the caller reads its status again.
    """
    why = f"{reason} while it was being preempted"
    row = (await db.execute(
        update(Session)
        .where(Session.id == session_id, Session.status == SessionStatus.TERMINATING,
               Session.status_reason.startswith(PREEMPTED_MARK, autoescape=True))
        .values(status_reason=why)
        .returning(Session.owner_id)
        .execution_options(synchronize_session=False)
    )).first()
    if row is None:
        return False
    await move_kernels(db, SessionStatus.CANCELLED, why, session_id=session_id, only_from={SessionStatus.PENDING})
    record_status(db, hub, session_id, row.owner_id, SessionStatus.TERMINATING, why)
    return True
