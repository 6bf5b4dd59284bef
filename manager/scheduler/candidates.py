"""Finding the best node for a request within one pass, without trying every node every time.

Requests of the same shape (cpu, mem, whole GPUs, GPU share) share one answer: the first time a pass
sees a shape it evaluates the group's nodes once (feasibility through the shared allocator, then the
group's scoring plan) and keeps them in a heap by rank key. When a node changes during the pass (a
placement there), its entry is re-evaluated for every shape seen so far and pushed again; stale
entries are dropped when they reach the top. A placement then costs a few heap operations per shape
instead of a pass over the cluster. Nodes are also bucketed by their largest free whole-GPU count, so
a shape's first evaluation skips the nodes that cannot have enough free GPUs.
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from decimal import Decimal
from typing import Any, Callable, Iterable, Sequence

from corral.common.node_resources import Allocation
from corral.common.slots import CPU, CUDA_DEVICE, CUDA_SHARES, MEM, ResourceSlot

from .filter import Candidate
from .node_view import NodeView
from .scorers import ScoringPlan

Shape = tuple[Decimal, int, Decimal, Decimal]
Entry = tuple[tuple[Any, ...], int, int, Allocation]  # (rank key, node index, node version, allocation)


def shape_of(request: ResourceSlot) -> Shape:
    return (request[CPU], int(request[MEM]), request[CUDA_DEVICE], request[CUDA_SHARES])


def _state_signature(node: NodeView) -> tuple[Any, ...]:
    """Equal for two nodes that would answer every request alike: same cores, memory and GPU topology
    (topologies are shared objects, see `gpu_slots.topology_from_json`), same use."""
    state = node.state
    cap = state.capacity
    gpus = state.gpus
    return (len(cap.cpu_cores), cap.mem, id(gpus.topology) if gpus is not None else None, state.cpu_used,
            state.mem_used, len(state.pinned_cores), tuple(gpus.free_shares.values()) if gpus is not None else ())


def _free_whole(node: NodeView) -> int:
    gpus = node.state.gpus
    return 0 if gpus is None else len(gpus.fully_free())


class GroupCandidates:
    def __init__(self, nodes: Sequence[NodeView], plan: ScoringPlan) -> None:
        ordered = sorted(nodes, key=lambda n: (n.first_contact, n.agent_id))
        self.nodes = ordered
        self._plan = plan
        self._order = [i / max(len(ordered), 1) for i in range(len(ordered))]
        self._index = {node.agent_id: i for i, node in enumerate(ordered)}
        self._version = [0] * len(ordered)
        self._heaps: dict[Shape, list[Entry]] = {}
        self._requests: dict[Shape, ResourceSlot] = {}
        self._ever: dict[tuple[Shape, int, str], bool] = {}
        self._distinct: list[NodeView] | None = None
        # Nodes in the same state (same kind of node, same use) get the same answer: evaluated once.
        self._memo: dict[tuple[Any, Shape], tuple[Allocation | None, tuple[Any, ...] | None]] = {}
        self.evaluations = 0

    def _evaluate(self, i: int, request: ResourceSlot) -> Entry | None:
        node = self.nodes[i]
        memo_key = (_state_signature(node), shape_of(request))
        known = self._memo.get(memo_key)
        if known is None:
            self.evaluations += 1
            allocation = node.state.try_allocate(request, with_cores=False)
            known = (allocation, self._plan.node_part(node, allocation) if allocation is not None else None)
            self._memo[memo_key] = known
        allocation, part = known
        if allocation is None or part is None:
            return None
        return (self._plan.finish(part, node, self._order[i]), i, self._version[i], allocation)

    def _heap(self, request: ResourceSlot) -> list[Entry]:
        shape = shape_of(request)
        heap = self._heaps.get(shape)
        if heap is None:
            wanted = int(request[CUDA_DEVICE])
            entries = []
            for i, node in enumerate(self.nodes):
                if wanted and _free_whole(node) < wanted:
                    continue
                entry = self._evaluate(i, request)
                if entry is not None:
                    entries.append(entry)
            heapq.heapify(entries)
            heap = self._heaps[shape] = entries
            self._requests[shape] = request
        return heap

    def best(self, request: ResourceSlot, allowed: Callable[[NodeView, Allocation], bool] | None = None,
             ) -> Candidate | None:
        """The best node that can take ``request`` now (and that ``allowed`` accepts), or None."""
        heap = self._heap(request)
        set_aside: list[Entry] = []
        found: Candidate | None = None
        while heap:
            entry = heap[0]
            _, i, version, allocation = entry
            if version != self._version[i]:
                heapq.heappop(heap)  # a fresh entry for the node was pushed when it changed
                continue
            if allowed is not None and not allowed(self.nodes[i], allocation):
                set_aside.append(heapq.heappop(heap))
                continue
            found = Candidate(self.nodes[i], allocation)
            break
        for entry in set_aside:
            heapq.heappush(heap, entry)
        return found

    def changed(self, node: NodeView) -> None:
        """``node``'s state changed (a placement or a release): re-rank it for every shape seen so far."""
        i = self._index[node.agent_id]
        self._version[i] += 1
        for shape, heap in self._heaps.items():
            entry = self._evaluate(i, self._requests[shape])
            if entry is not None:
                heapq.heappush(heap, entry)

    def could_ever_fit(self, request: ResourceSlot, size: int = 1, mode: str = "single-node") -> bool:
        """Whether the group's nodes could take ``request`` (``size`` kernels of it, as `gang` places them)
        when empty (cached per shape)."""
        from .gang import ever_fits

        key = (shape_of(request), size, mode if size > 1 else "")
        if key not in self._ever:
            if self._distinct is None:
                self._distinct = _distinct_capacities(self.nodes)
            # multi-node counts nodes, so it needs every node; otherwise one per distinct capacity will do.
            pool = self.nodes if size > 1 and mode == "multi-node" else self._distinct
            self._ever[key] = ever_fits((n.state for n in pool), request, size, mode)
        return self._ever[key]


def _distinct_capacities(nodes: Iterable[NodeView]) -> list[NodeView]:
    """One node per distinct capacity as ``can_ever_fit`` sees it (cores, memory, GPU count)."""
    seen: dict[tuple[Any, ...], NodeView] = {}
    for node in nodes:
        cap = node.state.capacity
        seen.setdefault((len(cap.cpu_cores), cap.mem, cap.gpu_count), node)
    return list(seen.values())


def group_nodes(nodes: Iterable[NodeView]) -> dict[str, list[NodeView]]:
    by_group: dict[str, list[NodeView]] = defaultdict(list)
    for node in nodes:
        by_group[node.resource_group].append(node)
    return by_group
