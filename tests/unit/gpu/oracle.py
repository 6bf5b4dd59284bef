"""Exhaustive-search oracle for whole-GPU picks: the contract, literally.

Enumerates every subset, so it is exponential; tests only.
"""
from __future__ import annotations

from itertools import combinations

from corral.common.gpu.links import link_bandwidth_gbps, link_rank
from corral.common.gpu.topology import GpuTopology

NO_PAIR = 1_000_000


def objective_key(topology: GpuTopology, chosen: tuple[int, ...], free: frozenset[int]) -> tuple[int, int, int, int]:
    """Criteria 1-4 of the contract; larger is better."""
    pairs = list(combinations(chosen, 2))
    weakest = min((link_rank(topology.links[a][b]) for a, b in pairs), default=NO_PAIR)
    bandwidth = sum(link_bandwidth_gbps(topology.links[a][b]) for a, b in pairs)
    numa = len({topology.devices[i].numa_node for i in chosen})
    left = [u for u in free if u not in chosen]
    cut = sum(link_bandwidth_gbps(topology.links[a][u]) for a in chosen for u in left)
    return (weakest, bandwidth, -numa, -cut)


def exhaustive_pick_whole_gpus(topology: GpuTopology, free: frozenset[int], count: int) -> tuple[int, ...] | None:
    if count > len(free):
        return None
    best: tuple[int, ...] | None = None
    best_key = None
    for subset in combinations(sorted(free), count):  # lexicographic order
        key = objective_key(topology, subset, free)
        if best_key is None or key > best_key:
            best, best_key = subset, key
    return best
