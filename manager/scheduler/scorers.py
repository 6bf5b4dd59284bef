"""Weighted node scorers: which feasible node a request goes to, per resource group.

A group names a list of scorers with weights (``[{"name": "topology", "weight": 1}]`` by default). Each
scorer gives a candidate a value in [0, 1] (higher is better); a candidate's rank key is the weighted
sum, best first, then — when ``topology`` is in the list — the topology scorer's exact ordering of GPU
sets (`score._preference`), then registration order (first contact, agent id). So ties are always
broken the same way, and ``topology`` alone orders nodes exactly as the allocator's contract does.

- ``topology``: whole GPUs by the weakest link of the chosen set; fractions best-fit (least share left
  on the chosen device); CPU-only work prefers nodes whose GPUs are all busy or that have none.
- ``concentrated``: pack — the fuller the node would be afterwards, the better.
- ``dispersed``: spread — the emptier, the better.
- ``first-fit``: the earlier the node registered, the better.

Every value depends only on the node and the request, so a node's key can be kept in a heap and
recomputed only when the node changes (see `candidates.GroupCandidates`).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping, Sequence

from corral.common.errors import InvalidRequest
from corral.common.gpu.allocator import NO_PAIR_RANK, WHOLE, _tables
from corral.common.resource_groups import DEFAULT_SCORERS, SCORER_NAMES

from corral.common.node_resources import Allocation

from .node_view import NodeView
from .score import _preference
from .filter import Candidate

# The best link rank there is (NV18: 4 + 18); a set's weakest link is scored against it.
BEST_LINK_RANK = 22

ScoreFn = Callable[[NodeView, Allocation, float], float]


def topology_value(node: NodeView, allocation: Allocation, order: float) -> float:
    gpus = node.state.gpus
    if not allocation.gpu_shares:
        idle = gpus is not None and any(share > 0 for share in gpus.free_shares.values())
        return 0.0 if idle else 1.0
    if gpus is None:
        return 0.0
    whole = [i for i, share in allocation.gpu_shares.items() if share == WHOLE]
    if allocation.gpu_whole or whole:
        chosen = sorted(whole if not allocation.gpu_whole else allocation.gpu_shares)
        if len(chosen) < 2:
            return 1.0
        rank = _tables(gpus.topology).rank
        weakest = min(rank[a][b] for i, a in enumerate(chosen) for b in chosen[i + 1:])
        return 1.0 if weakest >= NO_PAIR_RANK else min(weakest, BEST_LINK_RANK) / BEST_LINK_RANK
    free = gpus.free_shares
    leftover = sum((free[i] - share for i, share in allocation.gpu_shares.items()), Decimal(0))
    return max(0.0, 1.0 - float(leftover))


def fullness_after(node: NodeView, allocation: Allocation) -> float:
    """The node's mean utilisation over CPU, memory and GPUs once ``allocation`` is added."""
    state = node.state
    capacity = state.capacity
    parts = []
    if capacity.cpu_cores:
        parts.append(float(state.cpu_used + allocation.cpu) / len(capacity.cpu_cores))
    if capacity.mem:
        parts.append((state.mem_used + allocation.mem) / capacity.mem)
    if state.gpus is not None:
        free = state.gpus.free_shares
        total = len(free)
        used = total - float(sum(free.values(), Decimal(0))) + float(sum(allocation.gpu_shares.values(), Decimal(0)))
        parts.append(used / total if total else 0.0)
    return sum(parts) / len(parts) if parts else 0.0


SCORERS: dict[str, ScoreFn] = {
    "topology": topology_value,
    "concentrated": lambda node, allocation, order: fullness_after(node, allocation),
    "dispersed": lambda node, allocation, order: 1.0 - fullness_after(node, allocation),
    "first-fit": lambda node, allocation, order: 1.0 - order,
}


@dataclass(frozen=True)
class WeightedScorer:
    name: str
    weight: float
    fn: ScoreFn


def parse_scorers(spec: Iterable[Mapping[str, Any]] | None) -> list[WeightedScorer]:
    """A group's scorer list; unknown names or weights that are not positive numbers are refused."""
    result = []
    for entry in list(spec or DEFAULT_SCORERS):
        name = str(entry.get("name", ""))
        if name not in SCORERS:
            raise InvalidRequest(f"unknown scorer {name!r}; choose from {', '.join(SCORER_NAMES)}")
        try:
            weight = float(entry.get("weight", 1.0))
        except (TypeError, ValueError):
            raise InvalidRequest(f"scorer {name}: weight must be a number") from None
        if not weight > 0:
            raise InvalidRequest(f"scorer {name}: weight must be greater than 0")
        result.append(WeightedScorer(name, weight, SCORERS[name]))
    return result or parse_scorers(DEFAULT_SCORERS)


class ScoringPlan:
    """A group's scorers, turned into one rank key per (node, allocation): smaller is better."""

    def __init__(self, scorers: Sequence[WeightedScorer]) -> None:
        self.scorers = list(scorers)
        self._exact_topology = any(s.name == "topology" for s in self.scorers)

    def key(self, node: NodeView, allocation: Allocation, order: float) -> tuple[Any, ...]:
        """``order``: the node's registration rank in its group, scaled to [0, 1)."""
        return self.finish(self.node_part(node, allocation), node, order)

    def node_part(self, node: NodeView, allocation: Allocation) -> tuple[Any, ...]:
        """What depends only on the node's state and the allocation (nodes in the same state share it):
        the weighted sum of the scorers other than ``first-fit``, and the exact topology ordering."""
        total = sum(s.weight * s.fn(node, allocation, 0.0) for s in self.scorers if s.name != "first-fit")
        exact = _preference(Candidate(node, allocation)) if self._exact_topology else ()
        return (total, exact)

    def finish(self, part: tuple[Any, ...], node: NodeView, order: float) -> tuple[Any, ...]:
        total, exact = part
        total += sum(s.weight * (1.0 - order) for s in self.scorers if s.name == "first-fit")
        return (-round(total, 9), exact, order, node.agent_id)

    def rank(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """Best first (for callers with a handful of candidates; a pass uses the heaps)."""
        ordered = sorted(candidates, key=lambda c: (c.node.first_contact, c.node.agent_id))
        n = max(len(ordered), 1)
        keyed = [(self.key(c.node, c.allocation, i / n), c) for i, c in enumerate(ordered)]
        keyed.sort(key=lambda pair: pair[0])
        return [c for _, c in keyed]
