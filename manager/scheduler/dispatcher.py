"""The scheduling loop: runs a pass when triggered (new session, freed
resources) or every ``interval_s``, only while this manager holds the lead.

A pass reads the queue, brings the leader's cluster snapshot up to date
(`snapshot`), lets the planner decide per resource group (`planner`), then
reserves its placements in batched transactions (fencing check first, the
resource policies checked again from the database's rows, then a guarded
``PENDING → SCHEDULED`` per session). A session cancelled after the pass read
it simply loses that move and is skipped; its resources are never taken.

Sessions the planner chose to preempt (groups with ``preemption`` on) are moved ``RUNNING →
TERMINATING`` in one fenced transaction (guarded: one that ended or was destroyed meanwhile is left
alone) and handed to the terminator; `lifecycle.preemption` says what happens next.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.session_status import SessionStatus

from ..clock import utcnow
from ..config import SchedulerConfig
from ..events import EventHub
from ..leader import LeaderElection
from ..lifecycle.moves import set_reasons
from ..lifecycle.occupancy import recalc_occupied
from ..lifecycle.preemption import preempt_sessions
from ..lifecycle.terminator import Terminator
from .bind import Binder
from .cooldown import AgentCooldown
from .fencing import LeaderFence, LostLeadership
from .contexts import DecayedUsage
from .pass_inputs import plan_pass, recheck_policies
from .pending import PendingSession
from .planner import PassPlan
from .registry import SchedulerStages
from .gang import release
from .reserve import reserve, where
from .snapshot import ClusterSnapshot, Held
from .wakeup import SchedulerWakeup

log = logging.getLogger(__name__)

BATCH = 1000  # pending sessions read per query
MAX_CONSIDERED = 100_000  # sessions one pass looks at, at most (every group's, in age order)
COMMIT_BATCH = 2000  # placements reserved per transaction


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
        config: SchedulerConfig,
        decayed: DecayedUsage | None = None,
        terminator: Terminator | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._terminator = terminator  # None: preemptions are planned (and shown) but not carried out
        self._hub = hub
        self._leader = leader
        self._fence = fence
        self._stages = stages
        self._binder = binder
        self._wakeup = wakeup
        self._cooldown = cooldown
        self._interval_s = config.interval_s
        self._config = config
        self._decayed = decayed
        self.snapshot = ClusterSnapshot(config.snapshot_verify_s)
        self.last_plan: PassPlan | None = None
        self.last_timings: dict[str, float] = {}
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
        """Place as many pending sessions as fit; returns how many were placed.

        Every pending session of every group is read (a page of ``BATCH`` at a time, up to
        ``MAX_CONSIDERED``), the snapshot is brought up to date, the planner decides, and the placements
        are reserved in transactions of ``COMMIT_BATCH`` sessions, each with its fencing check, its
        guarded ``PENDING → SCHEDULED`` moves and a fresh check of the resource policies from the
        database's own rows.
        """
        now = utcnow()
        clock = time.perf_counter
        timings: dict[str, float] = {}
        try:
            async with self._sessionmaker() as db:
                t0 = clock()
                pending = await self._read_queue(db)
                if not pending:
                    return 0
                t1 = clock()
                await self.snapshot.refresh(db, now)
                t2 = clock()
                plan = await self._plan(db, now, pending)
            t3 = clock()
            placed = await self._commit(plan) if plan.choices else []
            if plan.preemptions:
                await self._preempt(plan.preemptions)
            timings = {"read_queue_s": t1 - t0, "snapshot_s": t2 - t1, "plan_s": t3 - t2, "commit_s": clock() - t3}
        except BaseException:
            self.snapshot.invalidate()  # the pass may have left its own placements in it
            raise
        self.last_timings = timings
        if placed:
            log.info("scheduler pass: %d of %d pending placed in %.3f s (%s)", len(placed), len(pending),
                     sum(timings.values()), ", ".join(f"{k} {v:.3f}" for k, v in timings.items()))
        self.last_plan = plan
        if plan.reasons:
            async with self._sessionmaker() as db:
                await set_reasons(db, plan.reasons, while_in={SessionStatus.PENDING})
                await db.commit()
        return len(placed)

    async def _read_queue(self, db: AsyncSession) -> list[PendingSession]:
        pending = list(await self._stages.queue.pending(db, BATCH))
        page = pending
        while len(page) == BATCH and len(pending) < MAX_CONSIDERED:
            page = list(await self._stages.queue.pending(db, BATCH, after=page[-1]))
            pending.extend(page)
        return pending

    async def _plan(self, db: AsyncSession, now: datetime, pending: list[PendingSession]) -> PassPlan:
        return await plan_pass(db, now, pending, self.snapshot, self._config, self._decayed,
                               cooling=self._cooldown.cooling)

    async def _preempt(self, preemptions: list[tuple[str, str, str]]) -> list[str]:
        """``RUNNING → TERMINATING`` for each victim (fenced, guarded), then the terminator removes its
        containers; the ids that moved."""
        if self._terminator is None:
            return []
        epoch = await self.epoch()
        async with self._sessionmaker() as db:
            await self._fence.check(db, epoch)
            moved = await preempt_sessions(db, self._hub, {victim: reason for victim, _, reason in preemptions})
            await db.commit()
        agents = {victim: agent for victim, agent, _ in preemptions}
        reasons = {victim: reason for victim, _, reason in preemptions}
        for victim in moved:
            log.info("session %s on agent %s: %s", victim, agents[victim], reasons[victim])
            self._terminator.spawn(victim)
        return moved

    async def _commit(self, plan: PassPlan) -> list[str]:
        epoch = await self.epoch()
        placed: list[str] = []
        for start in range(0, len(plan.choices), COMMIT_BATCH):
            batch = plan.choices[start:start + COMMIT_BATCH]
            async with self._sessionmaker() as db:
                allowed = await recheck_policies(db, batch)
                chosen = [(sess.id, cand, sess.cluster_mode) for sess, cand in batch if sess.id in allowed]
                won = set(await reserve(db, self._hub, self._fence, epoch, chosen)) if chosen else set()
                await recalc_occupied(db, {agent for _, cand, _ in chosen for agent in cand.agent_ids})
                await db.commit()
            for sess, cand in batch:
                if sess.id in won:
                    log.info("session %s scheduled on %s", sess.id, where(cand))
                    for idx, kernel in enumerate(cand.kernels):
                        self.snapshot.adopt((sess.id, idx), Held(kernel.node.agent_id, kernel.allocation, sess.id))
                    placed.append(sess.id)
                else:
                    release(None, cand)
            self._binder.spawn_many([sid for sid, _, _ in chosen if sid in won])
        return placed

