"""What the manager does when an agent reports on a kernel: it came up, it made
progress, it ended. Every write is a guarded move (`moves`)."""
from __future__ import annotations

import logging
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.ids import new_id
from corral.common.session_status import ACTIVE, TERMINAL, SessionStatus

from ..clock import utcnow
from ..db.models import Kernel, Session
from ..events import EventHub, SessionProgressEvent
from ..scheduler.wakeup import Wakeup
from .cluster_end import cluster_end_reason, final_reason, is_cluster_end
from .moves import lock_session, move_kernels, move_session, set_reason
from .occupancy import recalc_occupied
from .preemption import requeue_reason
from .transitions import PREEMPTED_MARK, STARTING, is_preempting

log = logging.getLogger(__name__)

MAX_STORED_LOG = 1 << 20
# Statuses in which an agent can know a kernel: the create request was sent.
ON_AGENT = frozenset({SessionStatus.PREPARING, SessionStatus.RUNNING, SessionStatus.TERMINATING})


class KernelEvents:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], hub: EventHub, wakeup: Wakeup) -> None:
        self._sessionmaker = sessionmaker
        self._hub = hub
        self._wakeup = wakeup
        # Stops a cluster session's other kernels once one kernel's end ended it (the terminator's spawn).
        self.stop_others: Callable[[str], object] | None = None

    async def running(
        self, kernel_id: str, container_id: str | None, agent_id: str | None = None,
        ssh_host_key: str | None = None, ssh_user: str | None = None,
    ) -> bool:
        """The kernel's container is up. False when nobody wants it any more (the agent should remove it)."""
        async with self._sessionmaker() as db:
            kernel = await db.get(Kernel, kernel_id)
            if kernel is None or (agent_id is not None and kernel.agent_id != agent_id):
                return False
            await lock_session(db, kernel.session_id)
            values: dict[str, str] = {"container_id": container_id} if container_id else {}
            if ssh_host_key:
                values.update(ssh_host_key=ssh_host_key, ssh_user=ssh_user or "")
            moved = await move_kernels(
                db, SessionStatus.RUNNING, "", kernel_ids=[kernel_id], only_from={SessionStatus.PREPARING}, **values
            )
            if not moved:
                status = await db.scalar(select(Kernel.status).where(Kernel.id == kernel_id))
                await db.commit()
                return status in ON_AGENT
            statuses = (await db.scalars(select(Kernel.status).where(Kernel.session_id == kernel.session_id))).all()
            # A batch cluster's worker that already ended 0 (`cluster_end`) has done its part: it does not
            # hold the session back (any other kernel's end has ended the session already).
            if all(s in (SessionStatus.RUNNING, SessionStatus.TERMINATED) for s in statuses):
                await move_session(
                    db, self._hub, kernel.session_id, SessionStatus.RUNNING,
                    f"container started on agent {kernel.agent_id}", only_from={SessionStatus.PREPARING},
                )
            await db.commit()
        return True

    async def progress(self, kernel_id: str, message: str) -> None:
        """A starting kernel's agent reports progress (an image pull): the session's reason while it is
        SCHEDULED/PREPARING, without a status-history row, and news for its listeners."""
        if not message:
            return
        async with self._sessionmaker() as db:
            row = (
                await db.execute(
                    select(Session.id, Session.owner_id, Session.status)
                    .join(Kernel, Kernel.session_id == Session.id)
                    .where(Kernel.id == kernel_id, Kernel.status.not_in(list(TERMINAL)))
                )
            ).first()
            if row is None or row.status not in STARTING:
                return
            changed = await set_reason(db, row.id, message, while_in=STARTING)
            await db.commit()
        if changed:
            self._hub.publish(SessionProgressEvent(row.id, row.owner_id, str(row.status), message, utcnow()))

    async def ended(
        self,
        kernel_id: str,
        exit_code: int | None,
        reason: str,
        logs: str | None,
        *,
        failed: bool = False,
        agent_id: str | None = None,
        only_from: frozenset[SessionStatus] | None = None,
    ) -> bool:
        """A kernel's container is gone (or never came up): free its resources and settle the session.

        ``agent_id``: the reporting agent; a report about a kernel placed elsewhere since is ignored.
        False when the kernel had already ended (or moved on) and nothing changed.
        """
        async with self._sessionmaker() as db:
            kernel = await db.get(Kernel, kernel_id)
            if kernel is None or kernel.status in TERMINAL:
                return False
            if agent_id is not None and kernel.agent_id != agent_id:
                return False
            session_id, kernel_agent, kernel_idx = kernel.session_id, kernel.agent_id, kernel.cluster_idx
            await lock_session(db, session_id)
            values: dict[str, object] = {"exit_code": exit_code}
            if logs is not None:
                values["last_logs"] = logs[-MAX_STORED_LOG:]
            if not failed:
                status, why = (await db.execute(
                    select(Session.status, Session.status_reason).where(Session.id == session_id)
                )).one()
                # Guarded again in the moves: a destroy that took over since (SQLite has no row lock) makes the
                # kernel's move back to the queue fail, and the kernel then ends as for any destroy.
                if is_preempting(status, why) and await self._requeue_preempted(
                    db, session_id, kernel_id, why, only_from, values
                ):
                    await recalc_occupied(db, [kernel_agent])
                    await db.commit()
                    self._wakeup.trigger()
                    return True
            target = SessionStatus.ERROR if failed else SessionStatus.TERMINATED
            moved = await move_kernels(db, target, reason, kernel_ids=[kernel_id], only_from=only_from, **values)
            if not moved:
                await db.rollback()
                return False
            left = await db.scalar(
                select(Kernel.id).where(Kernel.session_id == session_id, Kernel.status.not_in(list(TERMINAL))).limit(1)
            )
            stopping = False
            if left is None:
                await self._settle_session(db, session_id, exit_code, reason, failed)
            else:
                stopping = await self._end_cluster(db, session_id, kernel_idx, exit_code, reason, failed)
            await recalc_occupied(db, [kernel_agent])
            await db.commit()
        if stopping and self.stop_others is not None:
            self.stop_others(session_id)
        self._wakeup.trigger()  # freed resources may let a pending session in
        return True

    async def _end_cluster(self, db: AsyncSession, session_id: str, kernel_idx: int, exit_code: int | None,
                           reason: str, failed: bool) -> bool:
        """One kernel of a cluster session ended while others run: end the session if that kernel's end
        says so (`cluster_end`). True when the others are to be stopped."""
        status, kind = (await db.execute(select(Session.status, Session.type).where(Session.id == session_id))).one()
        if status not in (SessionStatus.PREPARING, SessionStatus.RUNNING):
            return False  # being destroyed or preempted already: that decides how it ends
        why = cluster_end_reason(kernel_idx, kind, exit_code, reason, failed)
        if why is None:
            return False
        values = {"exit_code": exit_code} if kind == "batch" and exit_code is not None else {}
        moved = await move_session(db, self._hub, session_id, SessionStatus.TERMINATING, why,
                                   only_from={SessionStatus.PREPARING, SessionStatus.RUNNING}, **values)
        if moved:
            log.info("session %s: %s", session_id, why)
        return moved

    async def _requeue_preempted(
        self, db: AsyncSession, session_id: str, kernel_id: str, session_reason: str,
        only_from: frozenset[SessionStatus] | None, values: dict[str, object],
    ) -> bool:
        """A kernel of a session being preempted has ended (the session row is locked): the kernel back to
        ``PENDING`` with its placement released and a new id, and once none is left on an agent the session
        too (guarded moves, `transitions.GUARDED_*_MOVES`). False when the kernel had moved on."""
        running = frozenset({SessionStatus.RUNNING})  # a preempted session was RUNNING: so were its kernels
        moved = await move_kernels(
            db, SessionStatus.PENDING, session_reason, kernel_ids=[kernel_id],
            only_from=running if only_from is None else running & only_from,
            agent_id=None, allocation=None, container_id=None, **values,
        )
        if not moved:
            return False
        # A new id per placement (as `Binder.requeue`): a late event about the old one cannot touch the next.
        await db.execute(update(Kernel).where(Kernel.id == kernel_id).values(id=new_id()))
        placed = await db.scalar(
            select(Kernel.id).where(Kernel.session_id == session_id, Kernel.status.in_(list(ACTIVE))).limit(1)
        )
        if placed is None:
            why = requeue_reason(session_reason)
            # started_at cleared: the next run's lifetime limit and usage count from its own start.
            if await move_session(db, self._hub, session_id, SessionStatus.PENDING, why,
                                  only_from={SessionStatus.TERMINATING}, started_at=None):
                log.info("session %s: %s", session_id, why)
        return True

    async def _settle_session(
        self, db: AsyncSession, session_id: str, exit_code: int | None, reason: str, failed: bool
    ) -> None:
        sess = await db.get(Session, session_id, populate_existing=True)
        if sess is None or sess.status in TERMINAL:
            return
        values = {"exit_code": exit_code} if sess.type == "batch" and exit_code is not None else {}
        if sess.status == SessionStatus.TERMINATING and is_cluster_end(sess.status_reason):
            # One kernel's end ended the cluster session (its exit code is recorded already).
            values = {}
            errors = await db.scalar(select(Kernel.id).where(
                Kernel.session_id == session_id, Kernel.status == SessionStatus.ERROR).limit(1))
            target = SessionStatus.ERROR if failed or errors is not None else SessionStatus.TERMINATED
            why = final_reason(sess.status_reason)
        elif failed:
            target, why = SessionStatus.ERROR, reason
        elif sess.status == SessionStatus.TERMINATING:
            target, why = SessionStatus.TERMINATED, reason
            if reason.startswith(PREEMPTED_MARK) and not sess.status_reason.startswith(PREEMPTED_MARK):
                why = sess.status_reason  # destroyed while being preempted: the destroy says how it ended
        elif sess.type == "batch" and exit_code is not None:
            outcome = "succeeded" if exit_code == 0 else "failed"
            why = f"batch command {outcome} with exit code {exit_code}"
            if reason.startswith("killed:"):  # the agent knows more than the code: out of memory, say
                why = f"batch command {reason} (exit code {exit_code})"
            target = SessionStatus.TERMINATED
        else:
            detail = f" (exit code {exit_code})" if exit_code is not None else ""
            target, why = SessionStatus.TERMINATED, f"{reason}{detail}"
        if await move_session(db, self._hub, session_id, target, why, **values):
            log.info("session %s ended: %s", session_id, why)
        elif target == SessionStatus.TERMINATED:
            # E.g. a kernel that never started, of a session still PENDING/SCHEDULED: it can only be cancelled
            # or fail now; say why instead of leaving it without kernels.
            await move_session(db, self._hub, session_id, SessionStatus.ERROR, why)
