"""A node that can take a request, with the allocation it would give (see `candidates` for how a pass
finds them)."""
from __future__ import annotations

from dataclasses import dataclass

from corral.common.node_resources import Allocation

from .node_view import NodeView


@dataclass(frozen=True)
class Candidate:
    """A node that can take the request; ``allocation`` has its GPUs but not yet
    its CPU cores (picked only for the chosen node, see ``NodeState.try_allocate``)."""

    node: NodeView
    allocation: Allocation

