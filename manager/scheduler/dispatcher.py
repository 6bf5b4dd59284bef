"""The scheduling loop: runs a pass when triggered (new session, freed
resources) or every ``interval_s``, only while this manager holds the lead.

A pass reads the queue and the nodes once, then reserves its placements in
one transaction (fencing check first, then a guarded ``PENDING → SCHEDULED``
per session). A session cancelled after the pass read it simply loses that
move and is skipped; its resources are never taken.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.session_status import SessionStatus
from corral.common.slots import ResourceSlot, format_size

from ..db.models import Session
from ..events import EventHub
from ..leader import LeaderElection
from ..lifecycle.moves import set_reason
from ..lifecycle.occupancy import recalc_occupied
from .bind import Binder
from .cooldown import AgentCooldown
from .fencing import LeaderFence, LostLeadership
from .filter import Candidate
from .node_view import NodeView, load_node_views
from .registry import SchedulerStages
from .reserve import reserve
from .wakeup import SchedulerWakeup

log = logging.getLogger(__name__)

BATCH = 200
MAX_CONSIDERED = 5000  # sessions one pass looks at, at most, when the first pages do not fit


class Scheduler:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        hub: EventHub,
        leader: LeaderElection,
        fence: LeaderFence,
        stages: SchedulerStages,
        binder: Binder,
        wakeup: SchedulerWakeup,
        cooldown: AgentCooldown,
        interval_s: float,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._hub = hub
        self._leader = leader
        self._fence = fence
        self._stages = stages
        self._binder = binder
        self._wakeup = wakeup
        self._cooldown = cooldown
        self._interval_s = interval_s
        self._epoch: int | None = None
        self._claimed_term: int | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait(self._interval_s)
            if not self._leader.is_leader:
                self._epoch = None
                continue
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except LostLeadership as exc:
                log.warning("scheduler pass stopped: %s", exc.detail)
                self._epoch = None
            except Exception:
                log.exception("scheduler pass failed; retrying at the next trigger")

    async def epoch(self) -> int:
        """This leadership's fencing epoch, claimed once per term."""
        if not self._leader.is_leader:
            raise LostLeadership("this manager does not hold the scheduler lease")
        term = self._leader.term
        if self._epoch is None or term != self._claimed_term:
            self._epoch = await self._fence.claim(term)
            self._claimed_term = term
        return self._epoch

    async def run_pass(self) -> int:
        """Place as many pending sessions as fit; returns how many were placed. The queue is read a page
        (``BATCH``) at a time, the next page only while this pass could place nothing of the last one, up
        to ``MAX_CONSIDERED`` sessions, so sessions that do not fit never hide the ones behind them."""
        async with self._sessionmaker() as db:
            pending = list(await self._stages.queue.pending(db, BATCH))
            if not pending:
                return 0
            nodes = [n for n in await load_node_views(db) if not self._cooldown.cooling(n.agent_id)]
            page = pending
            while len(page) == BATCH and len(pending) < MAX_CONSIDERED and not self._any_fits(nodes, page):
                page = list(await self._stages.queue.pending(db, BATCH, after=page[-1]))
                pending.extend(page)
        epoch = await self.epoch()
        choices: list[tuple[str, Candidate]] = []
        waiting: dict[str, str] = {}
        for sess in pending:
            request = ResourceSlot.from_json(sess.requested_slots)
            ranked = self._stages.scorer.rank(self._stages.filter.feasible(nodes, request, sess.resource_group))
            allocation = ranked[0].node.state.try_allocate(request) if ranked else None  # now with its cores
            if allocation is None:
                # Later, smaller requests may still fit (no head-of-line blocking); say why this one waits.
                reason = (f"waiting for resources: no agent in group {sess.resource_group!r} has "
                          f"{_describe(request)} free")
                if sess.status_reason != reason:
                    waiting[sess.id] = reason
                continue
            ranked[0].node.state.add(allocation)  # taken for the rest of this pass
            choices.append((sess.id, Candidate(ranked[0].node, allocation)))
        placed: list[str] = []
        if choices:
            # One transaction for the pass: one fencing check and a guarded move per session; a session
            # cancelled since the queue was read loses its move and gives its resources back.
            async with self._sessionmaker() as db:
                placed = await reserve(db, self._hub, self._fence, epoch, choices)
                await recalc_occupied(db, {c.node.agent_id for sid, c in choices})
                await db.commit()
            won = set(placed)
            for session_id, chosen in choices:
                if session_id in won:
                    log.info("session %s scheduled on %s", session_id, chosen.node.agent_id)
                else:
                    chosen.node.state.release(chosen.allocation)
            self._binder.spawn_many(placed)
        if waiting:
            async with self._sessionmaker() as db:
                for session_id, reason in waiting.items():
                    await set_reason(db, session_id, reason, while_in={SessionStatus.PENDING})
                await db.commit()
        return len(placed)

    def _any_fits(self, nodes: Sequence[NodeView], page: Sequence[Session]) -> bool:
        """Whether some session of ``page`` fits some node as the nodes are now (a look ahead: the pass
        itself decides what is placed)."""
        return any(
            self._stages.filter.feasible(nodes, ResourceSlot.from_json(sess.requested_slots), sess.resource_group)
            for sess in page
        )


def _describe(request: ResourceSlot) -> str:
    parts = []
    for name, amount in sorted(request.items()):
        parts.append(f"{name}={format_size(int(amount)) if name == 'mem' else amount}")
    return ", ".join(parts) or "anything"
