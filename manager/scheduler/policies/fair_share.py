"""``fair-share``: Slurm's classic fair-share factor combined with age and explicit priority.

For each user, F = 2^(−U/S): S is their normalised share (their weight times their project's, over
the users present in the group), U their normalised usage — the largest, over CPU, memory and GPUs, of
their fraction of everyone's decayed usage (resource-seconds, half-life configurable, default 7 days),
where what a user holds right now counts as ``running_horizon_s`` seconds of use. A session's priority
is ``w_fs·F + w_age·min(age/age_cap, 1) + w_prio·priority/100``, highest first. A placement adds to that
user's usage at once, so their next session drops back before the pass goes on.
"""
from __future__ import annotations

import heapq
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Sequence

from ..pending import PendingSession
from .base import RESOURCES, PolicyContext, Vector, add_vector, usage_vector


@dataclass(frozen=True)
class FairShareWeights:
    fair_share: float = 1000.0
    age: float = 100.0
    priority: float = 100.0
    age_cap_s: float = 7 * 24 * 3600.0
    running_horizon_s: float = 3600.0


def fair_share_factor(usage: float, share: float) -> float:
    if share <= 0:
        return 0.0
    return float(2.0 ** (-usage / share))


class FairShare:
    name = "fair-share"

    def __init__(self, weights: FairShareWeights | None = None) -> None:
        self.weights = weights or FairShareWeights()
        self._queues: dict[str, deque[PendingSession]] = {}
        self._usage: dict[str, Vector] = {}
        self._total: Vector = {}
        self._shares: dict[str, float] = {}
        self._heap: list[tuple[float, float, str, str]] = []
        self._now = 0.0

    def start(self, pending: Sequence[PendingSession], ctx: PolicyContext) -> None:
        self._now = ctx.now.timestamp()
        by_user: dict[str, list[PendingSession]] = defaultdict(list)
        for sess in pending:
            by_user[sess.owner_id].append(sess)
        self._queues = {u: deque(sorted(items, key=lambda s: -self._rest(s))) for u, items in by_user.items()}
        users = set(by_user) | set(ctx.decayed) | set(ctx.running)
        horizon = self.weights.running_horizon_s
        self._usage = {}
        for user in users:
            vector: Vector = {}
            add_vector(vector, ctx.decayed.get(user, {}))
            add_vector(vector, ctx.running.get(user, {}), horizon)
            self._usage[user] = vector
        self._total = {}
        for vector in self._usage.values():
            add_vector(self._total, vector)
        weight_sum = sum(ctx.shares.get(u, 1.0) for u in users) or 1.0
        self._shares = {u: ctx.shares.get(u, 1.0) / weight_sum for u in users}
        self._heap = []
        for user in self._queues:
            self._push(user)

    def _rest(self, sess: PendingSession) -> float:
        age = max(0.0, self._now - sess.created_at.timestamp())
        w = self.weights
        return w.age * min(age / w.age_cap_s, 1.0) + w.priority * sess.priority / 100.0

    def factor(self, user: str) -> float:
        vector = self._usage.get(user, {})
        usage = max((vector.get(r, 0.0) / self._total[r] for r in RESOURCES if self._total.get(r)), default=0.0)
        return fair_share_factor(usage, self._shares.get(user, 0.0))

    def _push(self, user: str) -> None:
        queue = self._queues[user]
        if queue:
            head = queue[0]
            score = self.weights.fair_share * self.factor(user) + self._rest(head)
            heapq.heappush(self._heap, (-score, head.created_at.timestamp(), head.id, user))

    def next(self) -> PendingSession | None:
        if not self._heap:
            return None
        *_, user = heapq.heappop(self._heap)
        return self._queues[user].popleft()

    def on_placed(self, session: PendingSession) -> None:
        used = usage_vector(session.request, session.cluster_size)
        add_vector(self._usage.setdefault(session.owner_id, {}), used, self.weights.running_horizon_s)
        add_vector(self._total, used, self.weights.running_horizon_s)
        self._push(session.owner_id)

    def on_skipped(self, session: PendingSession) -> None:
        self._push(session.owner_id)

    def factors(self, session: PendingSession) -> dict[str, float]:
        f = self.factor(session.owner_id)
        return {"fair_share": round(f, 6), "age_and_priority": round(self._rest(session), 3),
                "score": round(self.weights.fair_share * f + self._rest(session), 3)}
