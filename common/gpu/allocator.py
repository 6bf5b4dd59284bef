"""Pure GPU and CPU-core placement: which devices and cores a request gets.

No I/O: the scheduler (to decide which node can take a request and which is
best) and the agent (to re-check and apply) run the very same decision.

The contract
============

Whole GPUs — `pick_whole_gpus(topology, free, count)` returns, among all
``count``-subsets S of the ``free`` GPUs, the one that maximizes, in this
order (lexicographically):

1. the weakest link inside S: min over pairs of S of `links.link_rank`
   (NV<more> > NV<fewer> > PIX > PXB > PHB > NODE > SYS);
2. the total bandwidth inside S: sum over pairs of S of
   `links.link_bandwidth_gbps` (NVLink n × 25 GB/s, PCIe classes as documented
   in `links`);
3. fewer NUMA nodes spanned by S (a GPU of unknown NUMA node counts as one
   node of its own kind);
4. the best set left free for the next request: the most bandwidth left
   among the GPUs that stay free, i.e. the least bandwidth on the links
   between S and free GPUs outside S (its "cut"). Taking whole islands
   (an NVLink pair, a PCIe switch) beats breaking one up, so the islands
   left stay intact for the next multi-GPU request.
5. finally, for determinism, the lexicographically smallest sorted index
   tuple.

``None`` when fewer than ``count`` GPUs are free; ``()`` for count 0. For a
single GPU criteria 1–3 are moot, so it takes the free GPU whose removal
costs the rest the least bandwidth (criterion 4).

How it stays fast: the optimum's weakest link is the largest rank t for which
the graph of free GPUs joined by links of rank ≥ t holds a ``count``-clique,
so thresholds are tried from the best downwards and each is a branch-and-bound
search over cliques of that graph, bounded on criteria 2–4. Interchangeable
GPUs ("twins": same NUMA node, same label to every other GPU — the GPUs under
one PCIe switch, the halves of an NVSwitch board) are only ever taken lowest
index first, which collapses symmetric topologies to a handful of candidates.
Results are memoized per (free set, count) on the topology.

Fractions — `pick_gpu_fraction(topology, free_shares, share)`, quantum 0.01:

- share ≤ 1: one device, best-fit: the device whose free share is the
  smallest that still fits, ties to the lower index; whole GPUs stay free.
- share > 1: ⌊share⌋ fully free GPUs chosen by `pick_whole_gpus` among the
  fully free ones, each taking 1.0, plus — when there is a remainder — the
  remainder on one more device outside that set, chosen by (best weakest
  link to the set, then best-fit, then most bandwidth to the set, then lower
  index). Integral shares > 1 are whole GPUs.

CPU cores — `pick_cpu_cores`: from the preferred NUMA nodes (those of the
chosen GPUs) first, in the order given, lowest core first; only when they run
out, from the other nodes, fullest node first (fewest nodes touched); cores
of unknown NUMA node last. The flag says whether it had to spill.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations
from typing import Iterable, Mapping, Sequence

from ..errors import InvalidRequest
from .topology import GpuTopology

SHARE_QUANTUM = Decimal("0.01")
WHOLE = Decimal(1)
# The "weakest link" of a set without pairs: better than any real link.
NO_PAIR_RANK = 1_000_000
_MEMO_LIMIT = 100_000
_TABLES_KEY = "allocator.tables"


# Scores ----------------------------------------------------------------------
@dataclass(frozen=True)
class WholeGpuScore:
    """Criteria 1–4 of the contract for one chosen set; `key()` orders them."""

    weakest_link_rank: int
    bandwidth_gbps: int
    numa_nodes: int
    leftover_cut_gbps: int

    def key(self) -> tuple[int, int, int, int]:
        """Larger is better."""
        return (self.weakest_link_rank, self.bandwidth_gbps, -self.numa_nodes, -self.leftover_cut_gbps)


def score_whole_gpu_set(topology: GpuTopology, chosen: Iterable[int], free: Iterable[int]) -> WholeGpuScore:
    """Score a set of GPUs under the contract; ``free`` is the free set it came from.

    Lets the scheduler compare the placements different nodes can offer.
    """
    tables = _tables(topology)
    picked = sorted(set(chosen))
    rest = [u for u in set(free) if u not in set(picked)]
    pairs = list(combinations(picked, 2))
    return WholeGpuScore(
        weakest_link_rank=min((tables.rank[a][b] for a, b in pairs), default=NO_PAIR_RANK),
        bandwidth_gbps=sum(tables.bw[a][b] for a, b in pairs),
        numa_nodes=len({tables.numa[i] for i in picked}),
        leftover_cut_gbps=sum(tables.bw[a][u] for a in picked for u in rest),
    )


# Whole GPUs ----------------------------------------------------------------
def pick_whole_gpus(topology: GpuTopology, free: frozenset[int], count: int) -> tuple[int, ...] | None:
    """The best ``count`` GPUs among ``free`` under the module's contract."""
    tables = _tables(topology)
    if count < 0:
        raise InvalidRequest(f"GPU count must not be negative (got {count})")
    free_mask = 0
    for index in free:
        if not 0 <= index < tables.n:
            raise InvalidRequest(f"GPU {index} is not on this node")
        free_mask |= 1 << index
    memo_key = (free_mask, count)
    if memo_key in tables.memo:
        return tables.memo[memo_key]
    result = _pick_whole(tables, free_mask, count)
    if len(tables.memo) >= _MEMO_LIMIT:
        tables.memo.clear()
    tables.memo[memo_key] = result
    return result


def clear_allocator_memo(topology: GpuTopology) -> None:
    """Forget memoized decisions (benchmarks use it to time cold decisions)."""
    _tables(topology).memo.clear()


class _Tables:
    """Per-topology integer tables the search runs on, built once."""

    def __init__(self, topology: GpuTopology) -> None:
        n = topology.device_count
        self.n = n
        self.rank = [[topology.link_rank(i, j) if i != j else NO_PAIR_RANK for j in range(n)] for i in range(n)]
        self.bw = [[topology.link_bandwidth_gbps(i, j) if i != j else 0 for j in range(n)] for i in range(n)]
        # NUMA node as a small int; unknown (None) gets its own id.
        numa_ids: dict[int | None, int] = {}
        self.numa = [numa_ids.setdefault(d.numa_node, len(numa_ids)) for d in topology.devices]
        self.twin_class = self._twin_classes(topology)
        self.memo: dict[tuple[int, int], tuple[int, ...] | None] = {}

    def _twin_classes(self, topology: GpuTopology) -> list[int]:
        # u, v are twins when swapping them changes no criterion: same NUMA
        # node and the same label to every third GPU. That relation is an
        # equivalence (and twins share one label among themselves too).
        links = topology.links
        classes: list[int] = []
        representatives: list[int] = []
        for u in range(self.n):
            for class_id, rep in enumerate(representatives):
                if self.numa[u] == self.numa[rep] and all(
                    links[u][w] == links[rep][w] for w in range(self.n) if w not in (u, rep)
                ):
                    classes.append(class_id)
                    break
            else:
                classes.append(len(representatives))
                representatives.append(u)
        return classes


def _tables(topology: GpuTopology) -> _Tables:
    tables = topology._derived.get(_TABLES_KEY)
    if tables is None:
        tables = topology._derived[_TABLES_KEY] = _Tables(topology)
    return tables


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _pick_whole(tables: _Tables, free_mask: int, count: int) -> tuple[int, ...] | None:
    free = _bits(free_mask)
    if count == 0:
        return ()
    if count > len(free):
        return None
    bw, rank = tables.bw, tables.rank
    # deg[v]: bandwidth from v to the other free GPUs. For sets tied on
    # criterion 2, the cut (criterion 4) is sum(deg) - 2 * internal, so
    # minimizing the cut is minimizing sum(deg) over the set.
    deg = [0] * tables.n
    for v in free:
        row = bw[v]
        deg[v] = sum(row[u] for u in free)
    if count == 1:
        return (min(free, key=lambda v: (deg[v], v)),)
    thresholds = sorted({rank[u][v] for i, u in enumerate(free) for v in free[i + 1:]}, reverse=True)
    for threshold in thresholds:
        found = _CliqueSearch(tables, free, count, threshold, deg).run()
        if found is not None:
            return found
    raise AssertionError("the lowest threshold admits every set")  # pragma: no cover


class _CliqueSearch:
    """Branch and bound over ``count``-cliques of the free GPUs' graph of links ≥ threshold.

    Include-first depth-first search over GPUs in index order visits sets in
    lexicographic order, so keeping only strict improvements yields the
    lexicographically smallest optimum (criterion 5).
    """

    def __init__(self, tables: _Tables, free: list[int], count: int, threshold: int, deg: list[int]) -> None:
        self.bw = tables.bw
        self.numa = tables.numa
        self.deg = deg
        self.count = count
        n = tables.n
        free_mask = 0
        for v in free:
            free_mask |= 1 << v
        rank = tables.rank
        self.adjacent = [0] * n
        max_pair_bw = 0
        for v in free:
            mask = 0
            for u in free:
                if u != v and rank[v][u] >= threshold:
                    mask |= 1 << u
                    if self.bw[v][u] > max_pair_bw:
                        max_pair_bw = self.bw[v][u]
            self.adjacent[v] = mask
        self.max_pair_bw = max_pair_bw
        # For the tighter bound: per GPU, its adjacent GPUs grouped by link
        # bandwidth, best first.
        self.neighbours_by_bw: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        for v in free:
            groups: dict[int, int] = {}
            for u in _bits(self.adjacent[v]):
                groups[self.bw[v][u]] = groups.get(self.bw[v][u], 0) | 1 << u
            self.neighbours_by_bw[v] = sorted(groups.items(), reverse=True)
        # Twins are taken lowest index first: a GPU is eligible only when its
        # previous free twin is chosen; skipping a GPU skips its later twins.
        self.previous_twin = [-1] * n
        self.later_twins = [0] * n
        last_of_class: dict[int, int] = {}
        for v in free:
            cls = tables.twin_class[v]
            if cls in last_of_class:
                self.previous_twin[v] = last_of_class[cls]
            last_of_class[cls] = v
        for v in free:
            cls = tables.twin_class[v]
            for u in free:
                if u > v and tables.twin_class[u] == cls:
                    self.later_twins[v] |= 1 << u
        self.start_mask = free_mask
        self.best_key: tuple[int, int, int] | None = None
        self.best: tuple[int, ...] | None = None

    def run(self) -> tuple[int, ...] | None:
        self._search([], 0, self.start_mask, self.count, 0, 0, 0, [0] * len(self.deg))
        return self.best

    def _search(
        self,
        chosen: list[int],
        chosen_mask: int,
        candidates: int,
        remaining: int,
        internal_bw: int,
        numa_mask: int,
        deg_sum: int,
        gain: list[int],
    ) -> None:
        if remaining == 0:
            key = (internal_bw, -bin(numa_mask).count("1"), -deg_sum)
            if self.best_key is None or key > self.best_key:
                self.best_key = key
                self.best = tuple(chosen)
            return
        members = _bits(candidates)
        if len(members) < remaining:
            return
        if self.best_key is not None:
            gains = sorted((gain[u] for u in members), reverse=True)
            upper_bw = internal_bw + sum(gains[:remaining]) + remaining * (remaining - 1) // 2 * self.max_pair_bw
            degs = sorted(self.deg[u] for u in members)
            optimistic = (upper_bw, -bin(numa_mask).count("1"), -(deg_sum + sum(degs[:remaining])))
            if optimistic <= self.best_key:
                return
            if self._tight_bound(members, candidates, remaining, gain, internal_bw) < self.best_key[0]:
                return
        v = members[0]
        rest = candidates & ~(1 << v)
        previous = self.previous_twin[v]
        if previous < 0 or chosen_mask >> previous & 1:
            row = self.bw[v]
            new_gain = [g + b for g, b in zip(gain, row)]
            chosen.append(v)
            self._search(
                chosen,
                chosen_mask | 1 << v,
                rest & self.adjacent[v],
                remaining - 1,
                internal_bw + gain[v],
                numa_mask | 1 << self.numa[v],
                deg_sum + self.deg[v],
                new_gain,
            )
            chosen.pop()
        self._search(chosen, chosen_mask, rest & ~self.later_twins[v], remaining, internal_bw, numa_mask, deg_sum, gain)


    def _tight_bound(self, members: list[int], candidates: int, remaining: int, gain: list[int], internal_bw: int) -> int:
        """Bandwidth bound: each added GPU brings its gain to the chosen ones plus
        half of its best ``remaining - 1`` links to other candidates.

        Costlier than the first bound, so only run when that one fails.
        """
        need_each = remaining - 1
        potentials = []
        for u in members:
            need = need_each
            links = 0
            for bandwidth, mask in self.neighbours_by_bw[u]:
                available = (mask & candidates).bit_count()
                if available >= need:
                    links += need * bandwidth
                    need = 0
                    break
                links += available * bandwidth
                need -= available
            if need:
                continue  # too few neighbours among the candidates: in no clique
            potentials.append(2 * gain[u] + links)
        if len(potentials) < remaining:
            return -1
        potentials.sort(reverse=True)
        return internal_bw + sum(potentials[:remaining]) // 2


# Fractions -----------------------------------------------------------------
def pick_gpu_fraction(
    topology: GpuTopology, free_shares: Mapping[int, Decimal], share: Decimal
) -> dict[int, Decimal] | None:
    """Devices and the share each gives, for a fractional request (see contract)."""
    share = Decimal(share)
    if share <= 0 or share % SHARE_QUANTUM != 0:
        raise InvalidRequest(f"a GPU share must be a positive multiple of {SHARE_QUANTUM} (got {share})")
    free = {i: Decimal(amount) for i, amount in free_shares.items() if 0 <= i < topology.device_count}
    if share <= WHOLE:
        device = _best_fit(free, share, exclude=())
        return None if device is None else {device: share}
    whole_count = int(share // WHOLE)
    remainder = share - whole_count
    fully_free = frozenset(i for i, amount in free.items() if amount >= WHOLE)
    whole = pick_whole_gpus(topology, fully_free, whole_count)
    if whole is None:
        return None
    allocation = {i: WHOLE for i in whole}
    if remainder:
        device = _remainder_device(topology, free, whole, remainder)
        if device is None:
            return None
        allocation[device] = remainder
    return allocation


def _best_fit(free: Mapping[int, Decimal], share: Decimal, exclude: Sequence[int]) -> int | None:
    fitting = [(amount, i) for i, amount in free.items() if amount >= share and i not in exclude]
    return min(fitting)[1] if fitting else None


def _remainder_device(
    topology: GpuTopology, free: Mapping[int, Decimal], whole: Sequence[int], remainder: Decimal
) -> int | None:
    tables = _tables(topology)
    candidates = [i for i, amount in free.items() if amount >= remainder and i not in whole]
    if not candidates:
        return None

    def preference(i: int) -> tuple[int, Decimal, int, int]:
        weakest = min(tables.rank[i][w] for w in whole)
        bandwidth = sum(tables.bw[i][w] for w in whole)
        return (-weakest, free[i], -bandwidth, i)

    return min(candidates, key=preference)


# CPU cores -------------------------------------------------------------------
def pick_cpu_cores(
    free_cores: frozenset[int],
    numa_of_core: Mapping[int, int],
    preferred_numa: Sequence[int],
    count: int,
) -> tuple[tuple[int, ...], bool] | None:
    """``count`` cores, preferred NUMA nodes first; (cores ascending, spilled)."""
    if count < 0:
        raise InvalidRequest(f"CPU core count must not be negative (got {count})")
    if count > len(free_cores):
        return None
    by_node: dict[int | None, list[int]] = {}
    for core in sorted(free_cores):
        by_node.setdefault(numa_of_core.get(core), []).append(core)
    preferred = list(dict.fromkeys(preferred_numa))
    picked: list[int] = []
    for node in preferred:
        picked.extend(by_node.get(node, ())[: count - len(picked)])
    spilled = False
    if len(picked) < count:
        others = [node for node in by_node if node not in preferred and node is not None]
        others.sort(key=lambda node: (-len(by_node[node]), node))
        if None in by_node:
            others.append(None)
        for node in others:
            if len(picked) == count:
                break
            picked.extend(by_node[node][: count - len(picked)])
        spilled = bool(preferred)
    return tuple(sorted(picked)), spilled
