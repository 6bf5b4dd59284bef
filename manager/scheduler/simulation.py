"""A discrete-event simulation of one resource group driven by the real planner (policies, candidates,
scorers, backfill), with a simulated clock instead of the database and agents.

Jobs arrive, a pass runs at every arrival and completion, placed jobs hold their allocation on the
chosen node for their duration. Each job's lifetime limit (what backfill plans with) is its ``limit_s``
(at least its duration, as a walltime request would be). Decayed usage for fair-share is integrated
exactly between events. Used by ``benchmarks/fairness.py`` and the policy tests.

With ``preemption`` on in the group's settings, the jobs a pass preempts stop at once and go back to the
queue (they start over: their whole duration again); another pass follows at the same time.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Mapping, Sequence

from corral.common.allocator import NodeState
from corral.common.node_resources import Allocation, NodeCapacity
from corral.common.slots import ResourceSlot

from ..db.models import ResourcePolicy
from ..quotas import HeldPolicy, Holder, HolderUsage
from .groups import GroupSettings
from .node_view import NodeView
from .pending import PendingSession
from .planner import PlanInputs, Planner
from .preempt import ActiveSession
from .policies.base import PolicyContext, Vector, add_vector, capacity_vector, usage_vector
from .policies.fair_share import FairShareWeights

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Job:
    id: str
    user: str
    submit_s: float
    duration_s: float
    request: ResourceSlot
    limit_s: float | None = None  # lifetime limit; None: the duration
    priority: int = 50
    type: str = "batch"  # interactive jobs are never preempted


@dataclass
class JobResult:
    job: Job
    start_s: float | None = None  # the last start (a preempted job starts again)
    node: str | None = None
    preempted: int = 0  # how many times it was preempted

    @property
    def wait_s(self) -> float | None:
        return None if self.start_s is None else self.start_s - self.job.submit_s


@dataclass
class SimulationResult:
    results: dict[str, JobResult]
    gpu_seconds: dict[str, float]  # per user, received within the horizon
    utilization: float  # GPU-seconds used / GPU-seconds there were, within the horizon
    horizon_s: float
    passes: int = 0
    max_running: dict[str, float] = field(default_factory=dict)


def make_nodes(capacities: Sequence[NodeCapacity], group: str = "default") -> list[NodeView]:
    return [
        NodeView(f"node-{i:04d}", f"sim://{i}", group, EPOCH + timedelta(seconds=i), NodeState(capacity))
        for i, capacity in enumerate(capacities)
    ]


class Simulation:
    def __init__(
        self, nodes: list[NodeView], settings: GroupSettings, shares: Mapping[str, float] | None = None,
        half_life_s: float = 7 * 24 * 3600.0, weights: FairShareWeights | None = None,
        user_policies: Mapping[str, ResourcePolicy] | None = None,
    ) -> None:
        self.nodes = nodes
        self.settings = settings
        self.shares = dict(shares or {})
        self.half_life_s = half_life_s
        self.weights = weights
        self.user_policies = dict(user_policies or {})
        self.now = 0.0
        self.running: dict[str, tuple[Job, NodeView, Allocation, float]] = {}  # id -> (job, node, alloc, start)
        self.decayed: dict[str, Vector] = {}
        self.passes = 0
        self.reasons: dict[str, str] = {}  # what each pending job says, as the sessions table would
        self.preemptions: list[tuple[float, str, str]] = []  # (time, victim, reason)
        self._preempted: list[tuple[str, str]] = []  # the last pass's (victim, reason)

    def _decay_to(self, t: float) -> None:
        """Integrate running use into the decayed usage from ``self.now`` to ``t`` (exact exponential)."""
        dt = t - self.now
        if dt <= 0:
            return
        rate = math.log(2) / self.half_life_s
        factor = math.exp(-rate * dt)
        integral = (1 - factor) / rate  # ∫0^dt e^{-rate (dt - s)} ds
        for vector in self.decayed.values():
            for key in vector:
                vector[key] *= factor
        for job, _, _, _ in self.running.values():
            add_vector(self.decayed.setdefault(job.user, {}), usage_vector(job.request), integral)
        self.now = t

    def _capacity(self) -> Vector:
        total: Vector = {}
        for node in self.nodes:
            add_vector(total, capacity_vector(node.state.capacity.slots()))
        return total

    def run(self, jobs: Sequence[Job], horizon_s: float) -> SimulationResult:
        events: list[tuple[float, int, str, str]] = []  # (time, order, kind, job id); ends before arrivals
        by_id = {job.id: job for job in jobs}
        for job in jobs:
            heapq.heappush(events, (job.submit_s, 1, "arrive", job.id))
        results = {job.id: JobResult(job) for job in jobs}
        pending: dict[str, Job] = {}
        gpu_seconds: dict[str, float] = {}
        used_gpu_s = 0.0
        total_gpus = self._capacity().get("gpu", 0.0)
        while events and events[0][0] <= horizon_s:
            t = events[0][0]
            span = t - self.now
            for job, _, _, _ in self.running.values():
                got = usage_vector(job.request)["gpu"] * span
                gpu_seconds[job.user] = gpu_seconds.get(job.user, 0.0) + got
                used_gpu_s += got
            self._decay_to(t)
            while events and events[0][0] == t:
                _, _, kind, job_id = heapq.heappop(events)
                if kind == "end":
                    current = self.running.get(job_id)
                    if current is None or current[3] + current[0].duration_s != t:
                        continue  # the end of a run that was preempted
                    _, node, allocation, _ = self.running.pop(job_id)
                    node.state.release(allocation)
                else:
                    pending[job_id] = by_id[job_id]
            for _ in range(8):  # a pass that preempts is followed by one that uses what it freed
                placements = self._pass(pending)
                preempted, self._preempted = self._preempted, []
                for job_id, node, allocation in placements:
                    job = pending.pop(job_id)
                    self.running[job_id] = (job, node, allocation, t)
                    results[job_id].start_s, results[job_id].node = t, node.agent_id
                    heapq.heappush(events, (t + job.duration_s, 0, "end", job_id))
                for job_id, reason in preempted:
                    job, node, allocation, _ = self.running.pop(job_id)
                    node.state.release(allocation)
                    pending[job_id] = job
                    results[job_id].preempted += 1
                    self.preemptions.append((t, job_id, reason))
                if not preempted:
                    break
        span = horizon_s - self.now
        for job, _, _, _ in self.running.values():
            got = usage_vector(job.request)["gpu"] * span
            gpu_seconds[job.user] = gpu_seconds.get(job.user, 0.0) + got
            used_gpu_s += got
        utilization = used_gpu_s / (total_gpus * horizon_s) if total_gpus and horizon_s else 0.0
        return SimulationResult(results, gpu_seconds, utilization, horizon_s, self.passes)

    def _pass(self, pending: Mapping[str, Job]) -> list[tuple[str, NodeView, Allocation]]:
        if not pending:
            return []
        self.passes += 1
        now = EPOCH + timedelta(seconds=self.now)
        sessions = [
            PendingSession(job.id, job.user, None, job.type, job.request, 1, self.settings.name,
                           EPOCH + timedelta(seconds=job.submit_s), job.priority, self.reasons.get(job.id, ""))
            for job in pending.values()
        ]
        running: dict[str, Vector] = {}
        usage: dict[Holder, HolderUsage] = {}
        for job, _, _, _ in self.running.values():
            add_vector(running.setdefault(job.user, {}), usage_vector(job.request))
            usage.setdefault(Holder("user", job.user, "user quota"), HolderUsage()).add(job.request)
        users = {job.user for job in pending.values()} | set(running) | set(self.decayed)
        ctx = PolicyContext(now, self._capacity(), running, {u: dict(v) for u, v in self.decayed.items()},
                            {u: self.shares.get(u, 1.0) for u in users})
        held = {
            (job.user, None): (
                [HeldPolicy(Holder("user", job.user, "user quota"), self.user_policies[job.user])]
                if job.user in self.user_policies else []
            )
            for job in pending.values()
        }
        holding: dict[str, list[tuple[str, Allocation]]] = {}
        for job_id, (_, node, allocation, _) in self.running.items():
            holding.setdefault(node.agent_id, []).append((job_id, allocation))
        ends = {
            job_id: EPOCH.timestamp() + start + (job.limit_s or job.duration_s)
            for job_id, (job, _, _, start) in self.running.items()
        }

        async def ends_for(running_ids: list[str], new_ids: list[str]) -> Mapping[str, float]:
            known = {i: ends[i] for i in running_ids if i in ends}
            for job_id in new_ids:
                job = pending[job_id]
                known[job_id] = now.timestamp() + (job.limit_s or job.duration_s)
            return known

        active = {
            job_id: ActiveSession(job_id, job.type, "RUNNING", job.priority, EPOCH + timedelta(seconds=start))
            for job_id, (job, _, _, start) in self.running.items()
        } if self.settings.preemption else {}
        inputs = PlanInputs(now, sessions, self.nodes, {self.settings.name: self.settings}, held, usage,
                            {self.settings.name: ctx}, holding, weights=self.weights, active=active)
        plan = _run(Planner(inputs, ends_for).plan())
        self.reasons.update(plan.reasons)
        self._preempted = [(victim, reason) for victim, _, reason in plan.preemptions]
        return [(sess.id, cand.node, cand.allocation) for sess, cand in plan.choices]


def _run(coro):  # type: ignore[no-untyped-def]
    """Drive a coroutine that never awaits real I/O (the simulation's planner) to completion."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the simulated pass awaited real I/O")
