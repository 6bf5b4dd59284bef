"""``drf``: dominant resource fairness across users.

A user's dominant share is the largest, over CPU, memory and GPUs, of the fraction of the group's
capacity their active sessions hold — the sum over their sessions, not the largest one — divided by
their fair-share weight (weighted DRF: a user of weight 2 is entitled to twice the share). The user with
the lowest weighted dominant share goes next (ties: the session holding the head-of-queue reservation,
so users that keep dropping to the same share cannot push a large job back for ever; then the higher
explicit priority, then the older session); each
placement adds to that user's share at once, so a pass interleaves users as it fills the group.
"""
from __future__ import annotations

import heapq
from collections import defaultdict, deque
from typing import Sequence

from ..pending import PendingSession
from ..head import HEAD_MARK
from .base import RESOURCES, PolicyContext, Vector, add_vector, usage_vector


def dominant_share(held: Vector, capacity: Vector) -> float:
    return max((held.get(r, 0.0) / capacity[r] for r in RESOURCES if capacity.get(r)), default=0.0)


class Drf:
    name = "drf"

    def __init__(self) -> None:
        self._queues: dict[str, deque[PendingSession]] = {}
        self._heap: list[tuple[float, int, int, float, str, str]] = []
        self._held: dict[str, Vector] = {}
        self._capacity: Vector = {}
        self._weights: dict[str, float] = {}

    def start(self, pending: Sequence[PendingSession], ctx: PolicyContext) -> None:
        by_user: dict[str, list[PendingSession]] = defaultdict(list)
        for sess in pending:
            by_user[sess.owner_id].append(sess)
        self._queues = {
            user: deque(sorted(items, key=lambda s: (-s.priority, s.created_at, s.id)))
            for user, items in by_user.items()
        }
        self._capacity = dict(ctx.capacity)
        self._weights = {user: ctx.shares.get(user, 1.0) or 1.0 for user in self._queues}
        self._held = {user: dict(ctx.running.get(user, {})) for user in self._queues}
        self._heap = []
        for user in self._queues:
            self._push(user)

    def _push(self, user: str) -> None:
        queue = self._queues[user]
        if queue:
            head = queue[0]
            share = dominant_share(self._held[user], self._capacity) / self._weights[user]
            not_head = 0 if HEAD_MARK in head.status_reason else 1
            heapq.heappush(self._heap, (share, not_head, -head.priority, head.created_at.timestamp(), head.id, user))

    def next(self) -> PendingSession | None:
        if not self._heap:
            return None
        *_, user = heapq.heappop(self._heap)
        return self._queues[user].popleft()

    def on_placed(self, session: PendingSession) -> None:
        add_vector(self._held[session.owner_id], usage_vector(session.request, session.cluster_size))
        self._push(session.owner_id)

    def on_skipped(self, session: PendingSession) -> None:
        self._push(session.owner_id)

    def factors(self, session: PendingSession) -> dict[str, float]:
        return {"dominant_share": round(dominant_share(self._held.get(session.owner_id, {}), self._capacity), 6),
                "priority": float(session.priority)}
