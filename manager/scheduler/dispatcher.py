"""The scheduling loop: runs a pass when triggered (new session, freed
resources) or every ``interval_s``, only while this manager holds the lead."""
from __future__ import annotations

import asyncio
import logging

from ..context import ManagerContext
from ..leader import LeaderElection
from .bind import bind
from .filter import Candidate
from .registry import build_stages
from .node_view import load_node_views
from .reserve import reserve
from corral.common.slots import ResourceSlot, format_size

log = logging.getLogger(__name__)

BATCH = 200


class Scheduler:
    def __init__(self, ctx: ManagerContext, leader: LeaderElection) -> None:
        self.ctx = ctx
        self.leader = leader
        self.queue, self.filter, self.scorer = build_stages(ctx.config.scheduler)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._binds: set[asyncio.Task[None]] = set()

    def trigger(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*self._binds, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.ctx.config.scheduler.interval_s)
            except TimeoutError:
                pass
            self._wakeup.clear()
            if not self.leader.is_leader:
                continue
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler pass failed; retrying at the next trigger")

    async def run_pass(self) -> int:
        """Place as many pending sessions as fit; returns how many were placed."""
        placed = 0
        async with self.ctx.sessionmaker() as db:
            pending = await self.queue.pending(db, BATCH)
            if not pending:
                return 0
            nodes = await load_node_views(db)
            for sess in pending:
                request = ResourceSlot.from_json(sess.requested_slots)
                candidates = self.filter.feasible(nodes, request, sess.resource_group)
                ranked = self.scorer.rank(candidates)
                if not ranked:
                    # Later, smaller requests may still fit (no head-of-line blocking); tell the
                    # owner why this one waits, without a new history entry per pass.
                    waiting = f"waiting for resources: no agent in group {sess.resource_group!r} has {_describe(request)} free"
                    if sess.status_reason != waiting:
                        sess.status_reason = waiting
                        await db.commit()
                    continue
                allocation = ranked[0].node.state.try_allocate(request)  # now with its cores
                if allocation is None:
                    continue
                chosen = Candidate(ranked[0].node, allocation)
                await reserve(db, self.ctx.hub, sess, chosen)
                await db.commit()
                placed += 1
                log.info("session %s scheduled on %s", sess.id, chosen.node.agent_id)
                task = asyncio.get_running_loop().create_task(bind(self.ctx, sess.id, chosen.node.address))
                self._binds.add(task)
                task.add_done_callback(self._binds.discard)
        return placed


def _describe(request: ResourceSlot) -> str:
    parts = []
    for name, amount in sorted(request.items()):
        parts.append(f"{name}={format_size(int(amount)) if name == 'mem' else amount}")
    return ", ".join(parts) or "anything"
