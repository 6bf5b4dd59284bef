"""Head-of-queue reservation and backfill that never delays it (EASY backfill, per resource group).

When the first session in a group's queue order cannot start now, it gets a reservation: the node and
the earliest time at which, as the sessions running there end (at their lifetime limit when they have
one, else at an estimate from their owners' past session lengths), the node could take it. Later
sessions may still start now — anywhere else, and on the reserved node only when they end before that
time (their own lifetime limit says so) or when the node could still take the head at that time with
them on it. So a large job's wait is bounded by the running sessions' ends, however many small ones
keep arriving.

A cluster session at the head reserves for its whole gang: a single-node gang one node where all its
kernels fit (``count``), a multi-node gang the N nodes that can each take a kernel soonest, all from the
latest of their times (``others``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Iterable, Mapping, Sequence

from corral.common.allocator import NodeState
from corral.common.node_resources import Allocation
from corral.common.slots import ResourceSlot

from .gang import fits_all
from .node_view import NodeView

Ending = tuple[float, Allocation]  # (expected end, epoch seconds; what it frees)


@dataclass
class HeadReservation:
    session_id: str
    agent_id: str
    start_ts: float
    request: ResourceSlot
    frees_by_start: list[Allocation]  # the reserved node's allocations expected to end by then
    count: int = 1  # the head's kernels on this node (a single-node gang: all of them)
    others: tuple["HeadReservation", ...] = ()  # a multi-node gang's other nodes (same session and start)

    @property
    def start_at(self) -> datetime:
        return datetime.fromtimestamp(self.start_ts, timezone.utc)

    @property
    def agent_ids(self) -> list[str]:
        return [self.agent_id, *(other.agent_id for other in self.others)]

    def allows(self, node: NodeView, allocation: Allocation, ends_by: float | None) -> bool:
        """May a later session take ``allocation`` on ``node`` now without delaying the head?
        ``ends_by``: when that session is sure to have ended (its lifetime limit), None when unknown."""
        part = next((p for p in (self, *self.others) if p.agent_id == node.agent_id), None)
        if part is None:
            return True
        if ends_by is not None and ends_by <= self.start_ts:
            return True
        state = node.state
        state.add(allocation)
        for freed in part.frees_by_start:
            state.release(freed)
        try:
            return _fits(state, part.request, part.count)
        finally:
            for freed in part.frees_by_start:
                state.add(freed)
            state.release(allocation)


def _fits(state: NodeState, request: ResourceSlot, count: int) -> bool:
    taken = fits_all(state, request, count)
    for done in taken or ():
        state.release(done)
    return taken is not None


def _earliest(node: NodeView, request: ResourceSlot, count: int, ends: list[Ending], now_ts: float,
              give_up_at: float | None) -> HeadReservation | None:
    """When ``count`` kernels of ``request`` could start on ``node`` as its sessions end (None: never, or
    not before ``give_up_at``)."""
    state = node.state
    released: list[Allocation] = []
    start: float | None = None
    try:
        if _fits(state, request, count):
            start = now_ts
        for end_ts, allocation in ends:
            if start is not None or (give_up_at is not None and end_ts >= give_up_at):
                break
            state.release(allocation)
            released.append(allocation)
            if _fits(state, request, count):
                start = max(end_ts, now_ts)
    finally:
        for allocation in released:
            state.add(allocation)
    return None if start is None else HeadReservation("", node.agent_id, start, request, released, count)


def plan_reservation(
    session_id: str, request: ResourceSlot, nodes: Sequence[NodeView], endings: Mapping[str, Iterable[Ending]],
    now_ts: float, size: int = 1, mode: str = "single-node",
) -> HeadReservation | None:
    """The node where ``request`` (``size`` kernels of it on one node) can start soonest as its running
    sessions end (ties: registration order) — for a multi-node gang the ``size`` nodes that can each take
    a kernel soonest — or None when the nodes could not take it even once everything there has ended."""
    ordered = sorted(nodes, key=lambda n: (n.first_contact, n.agent_id))
    ends_of = {node.agent_id: sorted(endings.get(node.agent_id, ()), key=lambda e: e[0]) for node in ordered}
    if size > 1 and mode == "multi-node":
        parts = [p for node in ordered if (p := _earliest(node, request, 1, ends_of[node.agent_id], now_ts, None))]
        if len(parts) < size:
            return None
        chosen = sorted(parts, key=lambda p: p.start_ts)[:size]  # stable: registration order among ties
        start = chosen[-1].start_ts
        reserved = [
            HeadReservation(session_id, p.agent_id, start, request,
                            [a for end_ts, a in ends_of[p.agent_id] if end_ts <= start])
            for p in chosen
        ]
        return replace(reserved[0], others=tuple(reserved[1:]))
    best: HeadReservation | None = None
    for node in ordered:
        part = _earliest(node, request, size, ends_of[node.agent_id], now_ts, best.start_ts if best else None)
        if part is not None and (best is None or part.start_ts < best.start_ts):
            best = replace(part, session_id=session_id)
    return best
