"""Head-of-queue reservation and backfill that never delays it (EASY backfill, per resource group).

When the first session in a group's queue order cannot start now, it gets a reservation: the node and
the earliest time at which, as the sessions running there end (at their lifetime limit when they have
one, else at an estimate from their owners' past session lengths), the node could take it. Later
sessions may still start now — anywhere else, and on the reserved node only when they end before that
time (their own lifetime limit says so) or when the node could still take the head at that time with
them on it. So a large job's wait is bounded by the running sessions' ends, however many small ones
keep arriving.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Mapping, Sequence

from corral.common.node_resources import Allocation
from corral.common.slots import ResourceSlot

from .node_view import NodeView

Ending = tuple[float, Allocation]  # (expected end, epoch seconds; what it frees)


@dataclass
class HeadReservation:
    session_id: str
    agent_id: str
    start_ts: float
    request: ResourceSlot
    frees_by_start: list[Allocation]  # the reserved node's allocations expected to end by then

    @property
    def start_at(self) -> datetime:
        return datetime.fromtimestamp(self.start_ts, timezone.utc)

    def allows(self, node: NodeView, allocation: Allocation, ends_by: float | None) -> bool:
        """May a later session take ``allocation`` on ``node`` now without delaying the head?
        ``ends_by``: when that session is sure to have ended (its lifetime limit), None when unknown."""
        if node.agent_id != self.agent_id:
            return True
        if ends_by is not None and ends_by <= self.start_ts:
            return True
        state = node.state
        state.add(allocation)
        for freed in self.frees_by_start:
            state.release(freed)
        try:
            return state.try_allocate(self.request, with_cores=False) is not None
        finally:
            for freed in self.frees_by_start:
                state.add(freed)
            state.release(allocation)


def plan_reservation(
    session_id: str, request: ResourceSlot, nodes: Sequence[NodeView], endings: Mapping[str, Iterable[Ending]],
    now_ts: float,
) -> HeadReservation | None:
    """The node where ``request`` can start soonest as its running sessions end (ties: registration
    order), or None when no node could take it even once everything there has ended."""
    best: HeadReservation | None = None
    for node in sorted(nodes, key=lambda n: (n.first_contact, n.agent_id)):
        ends = sorted(endings.get(node.agent_id, ()), key=lambda e: e[0])
        state = node.state
        released: list[Allocation] = []
        start: float | None = None
        try:
            if state.try_allocate(request, with_cores=False) is not None:
                start = now_ts
            for end_ts, allocation in ends:
                if start is not None or (best is not None and end_ts >= best.start_ts):
                    break
                state.release(allocation)
                released.append(allocation)
                if state.try_allocate(request, with_cores=False) is not None:
                    start = max(end_ts, now_ts)
        finally:
            for allocation in released:
                state.add(allocation)
        if start is not None and (best is None or start < best.start_ts):
            best = HeadReservation(session_id, node.agent_id, start, request, list(released))
    return best
