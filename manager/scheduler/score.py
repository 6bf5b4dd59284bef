"""The topology scorer's exact ordering of candidates (used by `scorers` as its tie-break).

GPU requests go where the allocator's objective is best met:

- whole GPUs (``cuda.device``): the chosen set's score under the allocator's contract
  (`score_whole_gpu_set(...).key()`: weakest link, then total bandwidth, then fewer NUMA nodes, then
  the least damage to what stays free), best first. A 4-GPU job lands on the node that can give four
  NVLink-connected GPUs rather than on one that has four GPUs across sockets.
- fractions (``cuda.shares``): best-fit across nodes — the node whose chosen device has the least free
  share left, so partly used GPUs fill up and whole GPUs stay free everywhere. Above 1.0 the whole
  part is compared first, like a whole-GPU request.
- no GPUs: nodes whose GPUs are all busy (or that have none) first, so CPU-only work does not take the
  cores and memory that GPU jobs on idle GPUs will need.
"""
from __future__ import annotations

from decimal import Decimal

from corral.common.gpu.allocator import WHOLE, score_whole_gpu_set

from .filter import Candidate


def _preference(candidate: Candidate) -> tuple[object, ...]:
    """Smaller is better."""
    allocation = candidate.allocation
    gpus = candidate.node.state.gpus
    if not allocation.gpu_shares:
        idle_gpus = gpus is not None and any(share > 0 for share in gpus.free_shares.values())
        return (1 if idle_gpus else 0,)
    if gpus is None:
        return ()
    if allocation.gpu_whole:
        return _negated(score_whole_gpu_set(gpus.topology, allocation.gpu_shares, gpus.fully_free()).key())
    whole = [i for i, share in allocation.gpu_shares.items() if share == WHOLE]
    partial = [i for i, share in allocation.gpu_shares.items() if share < WHOLE]
    whole_key = _negated(score_whole_gpu_set(gpus.topology, whole, gpus.fully_free()).key()) if whole else ()
    free = gpus.free_shares
    leftover = sum((free[i] - allocation.gpu_shares[i] for i in partial), Decimal(0))
    return (*whole_key, leftover)


def _negated(key: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(-part for part in key)
