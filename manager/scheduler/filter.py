"""A node that can take a request, with the allocation it would give (see `candidates` for how a pass
finds them, `gang` for cluster sessions)."""
from __future__ import annotations

from dataclasses import dataclass

from corral.common.node_resources import Allocation

from .node_view import NodeView


@dataclass(frozen=True)
class Candidate:
    """A node that can take the request; ``allocation`` has its GPUs but not yet
    its CPU cores (picked only for the chosen node, see ``NodeState.try_allocate``).

    A cluster session's placement is its main kernel's, with the other kernels' in ``subs``
    (cluster index 1, 2, …)."""

    node: NodeView
    allocation: Allocation
    subs: tuple["Candidate", ...] = ()

    @property
    def kernels(self) -> tuple["Candidate", ...]:
        """Every kernel's placement, by cluster index."""
        return (Candidate(self.node, self.allocation), *self.subs)

    @property
    def agent_ids(self) -> list[str]:
        return sorted({kernel.node.agent_id for kernel in self.kernels})
