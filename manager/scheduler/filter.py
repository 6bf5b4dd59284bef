"""Filter stage: nodes that can take a request right now, with the allocation each would give."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from corral.common.node_resources import Allocation
from corral.common.slots import ResourceSlot

from .node_view import NodeView


@dataclass(frozen=True)
class Candidate:
    """A node that can take the request; ``allocation`` has its GPUs but not yet
    its CPU cores (picked only for the chosen node, see ``NodeState.try_allocate``)."""

    node: NodeView
    allocation: Allocation


class NodeFilter(Protocol):
    def feasible(self, nodes: Sequence[NodeView], request: ResourceSlot, resource_group: str) -> list[Candidate]: ...


class FitsFilter:
    """Exact per-device fit through the shared allocator, within the resource group."""

    def feasible(self, nodes: Sequence[NodeView], request: ResourceSlot, resource_group: str) -> list[Candidate]:
        candidates = []
        for node in nodes:
            if node.resource_group != resource_group:
                continue
            allocation = node.state.try_allocate(request, with_cores=False)
            if allocation is not None:
                candidates.append(Candidate(node, allocation))
        return candidates
