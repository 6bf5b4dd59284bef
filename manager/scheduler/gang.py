"""Gang placement: every kernel of a cluster session is placed in the same pass, or none is.

- ``single-node``: one node takes all N kernels. Nodes are tried in the group's rank order for the
  gang's whole request (N × cpu, memory and whole GPUs, so the topology scorer ranks nodes by the best
  N×k GPU set they have); on the chosen node each kernel then gets its best set in turn. A node where the
  N kernels do not all fit after all (fragmentation) is set aside and the next one is tried.
- ``multi-node``: one kernel per node (host networking gives each session one port block per node,
  see `corral.common.cluster`), each placed in turn on the best node the gang does not use yet.

Either way a failure part-way releases what the gang took, so nothing is held for a session that
cannot start; the gang waits as one unit (and may get the head-of-queue reservation).
"""
from __future__ import annotations

from typing import Callable, Iterable

from corral.common.allocator import NodeState
from corral.common.node_resources import Allocation
from corral.common.slots import CUDA_SHARES, ResourceSlot

from .candidates import GroupCandidates
from .filter import Candidate
from .node_view import NodeView

Allowed = Callable[[NodeView, Allocation], bool]
MAX_NODE_TRIES = 32  # single-node: nodes tried for a gang in one pass before it waits


def gang_request(request: ResourceSlot, size: int) -> ResourceSlot:
    """What N kernels of ``request`` take together, for ranking nodes (GPU shares stay per kernel: a
    share above 1 means something else)."""
    return ResourceSlot({name: amount if name == CUDA_SHARES else amount * size for name, amount in request.items()})


def fits_all(state: NodeState, request: ResourceSlot, size: int, *, with_cores: bool = False) -> list[Allocation] | None:
    """N allocations of ``request`` on ``state``, taken in turn (and left taken), or None (nothing left taken)."""
    taken: list[Allocation] = []
    for _ in range(size):
        allocation = state.try_allocate(request, with_cores=with_cores)
        if allocation is None:
            for done in taken:
                state.release(done)
            return None
        state.add(allocation)
        taken.append(allocation)
    return taken


def ever_fits(states: Iterable[NodeState], request: ResourceSlot, size: int, mode: str) -> bool:
    """Could the gang start on these nodes once they are empty?"""
    if size <= 1:
        return any(not state.can_ever_fit(request) for state in states)
    if mode == "multi-node":
        return sum(1 for state in states if not state.can_ever_fit(request)) >= size
    for state in states:
        empty = NodeState(state.capacity)
        if fits_all(empty, request, size) is not None:
            return True
    return False


def place_gang(candidates: GroupCandidates, request: ResourceSlot, size: int, mode: str,
               allowed: Allowed | None = None) -> Candidate | None:
    """Place all ``size`` kernels (taken on their nodes' states, which `candidates` is told about), or
    none. The result is the main kernel's placement with the others in ``subs``."""
    if size <= 1:
        chosen = candidates.best(request, allowed)
        allocation = chosen.node.state.try_allocate(request) if chosen is not None else None
        if chosen is None or allocation is None:
            return None
        chosen.node.state.add(allocation)
        candidates.changed(chosen.node)
        return Candidate(chosen.node, allocation)
    if mode == "multi-node":
        return _spread(candidates, request, size, allowed)
    return _together(candidates, request, size, allowed)


def _together(candidates: GroupCandidates, request: ResourceSlot, size: int, allowed: Allowed | None) -> Candidate | None:
    whole = gang_request(request, size)
    tried: set[str] = set()
    for _ in range(MAX_NODE_TRIES):
        chosen = candidates.best(whole, lambda node, alloc: node.agent_id not in tried and (
            allowed is None or allowed(node, alloc)))
        if chosen is None:
            return None
        node = chosen.node
        taken = fits_all(node.state, request, size, with_cores=True)
        if taken is not None and allowed is not None:
            # The reservation check on the gang's last kernel, with the others taken: the whole gang.
            node.state.release(taken[-1])
            ok = allowed(node, taken[-1])
            node.state.add(taken[-1])
            if not ok:
                for allocation in taken:
                    node.state.release(allocation)
                taken = None
        if taken is not None:
            candidates.changed(node)
            return Candidate(node, taken[0], tuple(Candidate(node, a) for a in taken[1:]))
        tried.add(node.agent_id)
    return None


def _spread(candidates: GroupCandidates, request: ResourceSlot, size: int, allowed: Allowed | None) -> Candidate | None:
    used: set[str] = set()
    placed: list[Candidate] = []
    for _ in range(size):
        chosen = candidates.best(request, lambda node, alloc: node.agent_id not in used and (
            allowed is None or allowed(node, alloc)))
        allocation = chosen.node.state.try_allocate(request) if chosen is not None else None
        if chosen is None or allocation is None:
            for done in placed:
                release(candidates, done)
            return None
        chosen.node.state.add(allocation)
        candidates.changed(chosen.node)
        used.add(chosen.node.agent_id)
        placed.append(Candidate(chosen.node, allocation))
    return Candidate(placed[0].node, placed[0].allocation, tuple(placed[1:]))


def release(candidates: GroupCandidates | None, placement: Candidate) -> None:
    """Give back everything a placement took (a lost reservation)."""
    for kernel in placement.kernels:
        kernel.node.state.release(kernel.allocation)
        if candidates is not None:
            candidates.changed(kernel.node)
