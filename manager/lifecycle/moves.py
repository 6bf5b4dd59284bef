"""Guarded status writes: every session and kernel transition goes through here.

Each move is one ``UPDATE … WHERE id = ? AND status IN (allowed sources)``
inside the caller's transaction. The row count says whether this writer won;
a loser changes nothing and gets ``None`` / an empty list back. A session move
that wins also adds its status-history row and queues its event, which goes
out only once the transaction commits (and is dropped on rollback).

Lock order, so that PostgreSQL never deadlocks two writers: the scheduler's
fencing row, then the session row, then its kernel rows, then the agent row
(see `occupancy.recalc_occupied`). `lock_session` takes the session row first
for writers that start from a kernel.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping

from sqlalchemy import and_, bindparam, case, event, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as OrmSession

from corral.common.session_status import TERMINAL, SessionStatus

from ..clock import utcnow
from ..db.models import Kernel, Session, SessionStatusChange
from ..events import EventHub, SessionStatusEvent
from .transitions import (GUARDED_KERNEL_MOVES, GUARDED_SESSION_MOVES, KERNEL_MOVES, PREEMPTED_MARK, SESSION_MOVES,
                          sources)

_PENDING_EVENTS = "corral.pending_events"
StatusSet = frozenset[SessionStatus] | set[SessionStatus]
_MOVE_CHUNK = 500  # sessions per guarded UPDATE (SQLite allows 32766 parameters; a CASE takes two each)


def _preempting(reason: Any) -> Any:
    return reason.startswith(PREEMPTED_MARK, autoescape=True)


def _session_may_move(allowed: frozenset[SessionStatus], target: SessionStatus) -> Any:
    """The WHERE on the session's status for a move to ``target``: the plain sources, and the guarded
    ones (`transitions.GUARDED_SESSION_MOVES`) only for a session being preempted."""
    plain = sorted(s for s in allowed if (s, target) not in GUARDED_SESSION_MOVES)
    guarded = sorted(s for s in allowed if (s, target) in GUARDED_SESSION_MOVES)
    conditions = [Session.status.in_(plain)] if plain else []
    if guarded:
        conditions.append(and_(Session.status.in_(guarded), _preempting(Session.status_reason)))
    return or_(*conditions)


def _kernel_may_move(allowed: frozenset[SessionStatus], target: SessionStatus) -> Any:
    """The same for kernels: a guarded source only while the kernel's session is being preempted."""
    plain = sorted(s for s in allowed if (s, target) not in GUARDED_KERNEL_MOVES)
    guarded = sorted(s for s in allowed if (s, target) in GUARDED_KERNEL_MOVES)
    conditions = [Kernel.status.in_(plain)] if plain else []
    if guarded:
        preempting = (
            select(Session.id)
            .where(Session.id == Kernel.session_id, Session.status == SessionStatus.TERMINATING,
                   _preempting(Session.status_reason))
            .exists()
        )
        conditions.append(and_(Kernel.status.in_(guarded), preempting))
    return or_(*conditions)


async def lock_session(db: AsyncSession, session_id: str) -> str | None:
    """Lock the session row for this transaction (PostgreSQL; SQLite has one writer anyway); its status."""
    return await db.scalar(select(Session.status).where(Session.id == session_id).with_for_update())


async def move_session(
    db: AsyncSession,
    hub: EventHub,
    session_id: str,
    target: SessionStatus,
    reason: str,
    *,
    only_from: StatusSet | None = None,
    **values: Any,
) -> bool:
    """Move one session to ``target`` if its current status allows it; True when this writer won."""
    return bool(await move_sessions(db, hub, {session_id: reason}, target, only_from=only_from, **values))


async def move_sessions(
    db: AsyncSession,
    hub: EventHub,
    reasons: Mapping[str, str],
    target: SessionStatus,
    *,
    only_from: StatusSet | None = None,
    **values: Any,
) -> list[str]:
    """Move several sessions (id → reason) at once, each guarded on its own status; the ids that moved.

    One ``UPDATE … RETURNING`` per ``_MOVE_CHUNK`` sessions (their reasons by a CASE on the id) and one
    history insert, so a burst costs a few statements rather than a few per session.
    """
    allowed = sources(SESSION_MOVES, target, only_from)
    if not allowed or not reasons:
        return []
    now = utcnow()
    moved: list[str] = []
    pending = db.sync_session.info.setdefault(_PENDING_EVENTS, [])
    ids = list(reasons)
    for start in range(0, len(ids), _MOVE_CHUNK):
        chunk = ids[start:start + _MOVE_CHUNK]
        distinct = {reasons[sid] for sid in chunk}
        # One statement per chunk: a shared reason is a constant, different ones a CASE on the id.
        reason_value: Any = (
            next(iter(distinct)) if len(distinct) == 1
            else case({sid: reasons[sid] for sid in chunk}, value=Session.id, else_=Session.status_reason)
        )
        changes: dict[str, Any] = {
            "status": target, "status_reason": reason_value, "status_changed_at": now, **_timestamps(target, now),
            **values,
        }
        result = await db.execute(
            update(Session)
            .where(Session.id.in_(chunk), _session_may_move(allowed, target))
            .values(**changes)
            .returning(Session.id, Session.owner_id)
            .execution_options(synchronize_session=False)
        )
        history = []
        for session_id, owner_id in result.all():
            reason = reasons[session_id]
            moved.append(session_id)
            history.append({"session_id": session_id, "status": target, "reason": reason, "at": now})
            pending.append((hub, SessionStatusEvent(session_id, owner_id, target, reason, now)))
        if history:
            await db.execute(insert(SessionStatusChange), history)  # one executemany, not a unit-of-work flush
    return moved


def record_created(db: AsyncSession, hub: EventHub, sess: Session, reason: str) -> None:
    """The first history row of a session being added in this transaction (its status as created)."""
    now = sess.status_changed_at or utcnow()
    db.add(SessionStatusChange(session_id=sess.id, status=sess.status, reason=reason, at=now))
    db.sync_session.info.setdefault(_PENDING_EVENTS, []).append(
        (hub, SessionStatusEvent(sess.id, sess.owner_id, sess.status, reason, now))
    )


async def move_kernels(
    db: AsyncSession,
    target: SessionStatus,
    reason: str,
    *,
    session_id: str | None = None,
    session_ids: Iterable[str] | None = None,
    kernel_ids: Iterable[str] | None = None,
    only_from: StatusSet | None = None,
    **values: Any,
) -> list[str]:
    """Move a session's kernels (or the given ones) to ``target`` where allowed; the ids of those that moved."""
    allowed = sources(KERNEL_MOVES, target, only_from)
    if not allowed or (session_id is None and session_ids is None and kernel_ids is None):
        return []
    query = update(Kernel).where(_kernel_may_move(allowed, target))
    if session_id is not None:
        query = query.where(Kernel.session_id == session_id)
    if session_ids is not None:
        query = query.where(Kernel.session_id.in_(list(session_ids)))
    if kernel_ids is not None:
        query = query.where(Kernel.id.in_(list(kernel_ids)))
    result = await db.execute(
        query.values(status=target, status_reason=reason, status_changed_at=utcnow(), **values)
        .returning(Kernel.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars().all())


async def move_kernels_of_sessions(
    db: AsyncSession,
    target: SessionStatus,
    reason: str,
    values_by_kernel: Mapping[tuple[str, int], Mapping[str, Any]],
    *,
    only_from: StatusSet | None = None,
) -> None:
    """Move kernels, each named by (session id, cluster index), to ``target`` where allowed, with values of
    their own (one executemany statement for any number of kernels)."""
    # Guarded moves (`transitions.GUARDED_KERNEL_MOVES`) are never taken here.
    allowed = frozenset(s for s in sources(KERNEL_MOVES, target, only_from) if (s, target) not in GUARDED_KERNEL_MOVES)
    if not allowed or not values_by_kernel:
        return
    columns = sorted({column for values in values_by_kernel.values() for column in values})
    kernels = Kernel.__table__
    await db.execute(
        kernels.update()
        # Plain comparisons, not IN: an expanding IN cannot be part of an executemany. The status is
        # wrapped so SQLite looks rows up by session_id, not by the (far less selective) status index.
        .where(kernels.c.session_id == bindparam("_session_id"), kernels.c.cluster_idx == bindparam("_cluster_idx"),
               or_(*(func.coalesce(kernels.c.status, "") == s for s in sorted(allowed))))
        .values(
            status=target, status_reason=reason, status_changed_at=utcnow(),
            **{column: bindparam(f"_{column}", type_=kernels.c[column].type) for column in columns},
        ),
        [
            {"_session_id": session_id, "_cluster_idx": idx, **{f"_{column}": values[column] for column in columns}}
            for (session_id, idx), values in values_by_kernel.items()
        ],
    )


def record_status(db: AsyncSession, hub: EventHub, session_id: str, owner_id: str, status: SessionStatus,
                  reason: str) -> None:
    """A history row and an event (after commit) for a change of what a session in ``status`` is about
    to do, without a move: a destroy taking over a preemption, say."""
    now = utcnow()
    db.add(SessionStatusChange(session_id=session_id, status=status, reason=reason, at=now))
    db.sync_session.info.setdefault(_PENDING_EVENTS, []).append(
        (hub, SessionStatusEvent(session_id, owner_id, status, reason, now))
    )


async def set_reason(db: AsyncSession, session_id: str, reason: str, *, while_in: StatusSet) -> bool:
    """Change what a session says about itself without a transition (no history row)."""
    result = await db.execute(
        update(Session)
        .where(Session.id == session_id, Session.status.in_(list(while_in)), Session.status_reason != reason)
        .values(status_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def set_reasons(db: AsyncSession, reasons: Mapping[str, str], *, while_in: StatusSet) -> None:
    """`set_reason` for many sessions: one UPDATE per ``_MOVE_CHUNK`` (their reasons by a CASE on the id)."""
    ids = list(reasons)
    for start in range(0, len(ids), _MOVE_CHUNK):
        chunk = ids[start:start + _MOVE_CHUNK]
        await db.execute(
            update(Session)
            .where(Session.id.in_(chunk), Session.status.in_(list(while_in)))
            .values(status_reason=case({sid: reasons[sid] for sid in chunk}, value=Session.id,
                                       else_=Session.status_reason))
            .execution_options(synchronize_session=False)
        )


def _timestamps(target: SessionStatus, now: datetime) -> dict[str, Any]:
    if target == SessionStatus.SCHEDULED:
        return {"scheduled_at": now}
    if target == SessionStatus.RUNNING:
        return {"started_at": func.coalesce(Session.started_at, literal(now, Session.__table__.c.started_at.type))}
    if target == SessionStatus.PENDING:
        return {"scheduled_at": None}
    if target in TERMINAL:
        return {"terminated_at": now}
    return {}


@event.listens_for(OrmSession, "after_commit")
def _publish_after_commit(session: OrmSession) -> None:
    for hub, status_event in session.info.pop(_PENDING_EVENTS, []):
        hub.publish(status_event)


@event.listens_for(OrmSession, "after_rollback")
def _drop_after_rollback(session: OrmSession) -> None:
    session.info.pop(_PENDING_EVENTS, None)
