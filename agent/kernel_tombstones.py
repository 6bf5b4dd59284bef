"""Kernel ids this agent has recently seen end, so a late create for one is refused.

The manager's create and destroy for one kernel travel on separate requests and
may arrive in either order: a destroy for a kernel the agent has not heard of
yet is answered 404, and the create that arrives after it must not start a
container nobody wants. Kernel ids are never reused, so any create for an id
in here is stale. Bounded by count and age: the races this guards against
last seconds, not hours.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable

from corral.common.errors import KernelDestroyed

MAX_TOMBSTONES = 10_000
TOMBSTONE_TTL_S = 3600.0
DESTROYED_BEFORE_CREATED = "was destroyed before it was created"


class KernelTombstones:
    def __init__(
        self, max_entries: int = MAX_TOMBSTONES, ttl_s: float = TOMBSTONE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._ended: OrderedDict[str, tuple[float, str]] = OrderedDict()  # id -> (when, how it ended), oldest first

    def bury(self, kernel_id: str, how: str) -> None:
        """Remember that ``kernel_id`` ended; ``how`` completes "kernel K ...". The first reason stays."""
        self._prune()
        if kernel_id in self._ended:
            return
        self._ended[kernel_id] = (self._clock(), how)
        while len(self._ended) > self.max_entries:
            self._ended.popitem(last=False)

    def how_it_ended(self, kernel_id: str) -> str | None:
        self._prune()
        entry = self._ended.get(kernel_id)
        return entry[1] if entry else None

    def now(self) -> float:
        return self._clock()

    def buried_before(self, kernel_id: str, moment: float) -> bool:
        """Whether ``kernel_id`` got its tombstone before ``moment`` (a ``now()``)."""
        self._prune()
        entry = self._ended.get(kernel_id)
        return entry is not None and entry[0] < moment

    def refuse_create(self, kernel_id: str) -> None:
        """Raises ``KernelDestroyed`` if ``kernel_id`` has a tombstone."""
        how = self.how_it_ended(kernel_id)
        if how is not None:
            raise KernelDestroyed(f"kernel {kernel_id} {how}", kernel_id=kernel_id)

    def __contains__(self, kernel_id: object) -> bool:
        return isinstance(kernel_id, str) and self.how_it_ended(kernel_id) is not None

    def __len__(self) -> int:
        self._prune()
        return len(self._ended)

    def _prune(self) -> None:
        oldest_kept = self._clock() - self.ttl_s
        while self._ended:
            _, (buried_at, _) = next(iter(self._ended.items()))
            if buried_at >= oldest_kept:
                return
            self._ended.popitem(last=False)
