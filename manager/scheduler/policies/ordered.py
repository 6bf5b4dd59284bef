"""``fifo`` and ``lifo``: a fixed order, higher explicit priority first, then by age."""
from __future__ import annotations

from typing import Sequence

from ..pending import PendingSession
from .base import PolicyContext


class FixedOrder:
    newest_first = False
    name = "fifo"
    sticky_head = True  # the head keeps its place until it starts (see planner)

    def __init__(self) -> None:
        self._order: list[PendingSession] = []
        self._at = 0

    def start(self, pending: Sequence[PendingSession], ctx: PolicyContext) -> None:
        sign = -1 if self.newest_first else 1
        self._order = sorted(
            pending, key=lambda s: (-s.priority, sign * s.created_at.timestamp(), s.id if sign > 0 else _rev(s.id))
        )
        self._at = 0

    def next(self) -> PendingSession | None:
        if self._at >= len(self._order):
            return None
        self._at += 1
        return self._order[self._at - 1]

    def on_placed(self, session: PendingSession) -> None:
        pass

    def on_skipped(self, session: PendingSession) -> None:
        pass

    def factors(self, session: PendingSession) -> dict[str, float]:
        return {"priority": float(session.priority)}


class Fifo(FixedOrder):
    """Oldest first."""


class Lifo(FixedOrder):
    """Newest first."""

    newest_first = True
    name = "lifo"


def _rev(text: str) -> tuple[int, ...]:
    return tuple(-ord(ch) for ch in text)
