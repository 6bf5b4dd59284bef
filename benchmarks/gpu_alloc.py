"""GPU allocation benchmark: placement quality and decision time (issue 4).

On every topology in configs/gpus/ it replays random mixed workloads (whole
and fractional requests, arrivals and departures, fixed seed) against Corral's
allocator and a naive first-fit baseline, and prints:

- the share of multi-GPU placements that are optimal under the allocator's
  contract (criteria 1-4, checked against exhaustive search), and the share
  optimal on interconnect alone (criteria 1-2);
- GPU utilization (shares in use / GPUs) at the first refused request;
- p50/p99 time of one allocation decision, memo cleared before each call
  (cold), on the 8-GPU and the 16-GPU nodes; a synthetic 16-GPU node with no
  interchangeable GPUs (two DGX-1 cube meshes joined by SYS) is timed too, as
  a worst case for the search.

Last line of output: one JSON object with the figures.

    python benchmarks/gpu_alloc.py [--seed N] [--streams N] [--steps N]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import combinations
from pathlib import Path

from corral.common.gpu.allocator import clear_allocator_memo, pick_gpu_fraction, pick_whole_gpus
from corral.common.gpu.links import link_bandwidth_gbps, link_rank
from corral.common.gpu.topo_parser import load_topology_file
from corral.common.gpu.topology import GpuTopology

TOPOLOGY_DIR = Path(__file__).resolve().parents[1] / "configs" / "gpus"
ONE = Decimal(1)
P99_TARGET_MS = {8: 1.0, 16: 10.0}

Request = tuple[str, Decimal]  # ("whole", count) or ("share", amount)
Allocation = dict[int, Decimal]


# Workload ------------------------------------------------------------------------
def random_request(rng: random.Random, gpus: int) -> Request:
    if rng.random() < 0.5:
        counts = [c for c in (1, 2, 3, 4, 8) if c <= gpus]
        weights = [4, 4, 1, 3, 1][: len(counts)]
        return ("whole", Decimal(rng.choices(counts, weights)[0]))
    shares = ["0.1", "0.2", "0.25", "0.3", "0.5", "0.75", "1.5"]
    weights = [3, 4, 3, 2, 4, 2, 1]
    return ("share", Decimal(rng.choices(shares, weights)[0]))


def event_stream(rng: random.Random, gpus: int, steps: int, departures: float = 0.35) -> list[tuple[str, object]]:
    """Arrivals and departures; a departure holds a number in [0, 1) that picks the live job."""
    return [("depart", rng.random()) if rng.random() < departures else ("arrive", random_request(rng, gpus)) for _ in range(steps)]


# Allocators under test -----------------------------------------------------------
class Placer:
    name = ""

    def place(self, topology: GpuTopology, free: dict[int, Decimal], request: Request) -> Allocation | None:
        raise NotImplementedError


class CorralPlacer(Placer):
    name = "corral"

    def place(self, topology: GpuTopology, free: dict[int, Decimal], request: Request) -> Allocation | None:
        kind, amount = request
        if kind == "whole":
            fully_free = frozenset(i for i, v in free.items() if v == ONE)
            chosen = pick_whole_gpus(topology, fully_free, int(amount))
            return None if chosen is None else {i: ONE for i in chosen}
        return pick_gpu_fraction(topology, free, amount)


class FirstFitPlacer(Placer):
    """Lowest indexes first, whatever the links."""

    name = "first_fit"

    def place(self, topology: GpuTopology, free: dict[int, Decimal], request: Request) -> Allocation | None:
        kind, amount = request
        fully_free = sorted(i for i, v in free.items() if v == ONE)
        if kind == "whole":
            count = int(amount)
            return {i: ONE for i in fully_free[:count]} if len(fully_free) >= count else None
        if amount <= ONE:
            fitting = [i for i in sorted(free) if free[i] >= amount]
            return {fitting[0]: amount} if fitting else None
        whole = int(amount)
        if len(fully_free) < whole:
            return None
        allocation = {i: ONE for i in fully_free[:whole]}
        rest = amount - whole
        if rest:
            fitting = [i for i in sorted(free) if free[i] >= rest and i not in allocation]
            if not fitting:
                return None
            allocation[fitting[0]] = rest
        return allocation


# Exhaustive oracle (independent of the allocator's search) -----------------------
class Oracle:
    def __init__(self, topology: GpuTopology) -> None:
        n = topology.device_count
        self.rank = [[link_rank(topology.links[i][j]) if i != j else 0 for j in range(n)] for i in range(n)]
        self.bw = [[link_bandwidth_gbps(topology.links[i][j]) if i != j else 0 for j in range(n)] for i in range(n)]
        self.numa = [d.numa_node for d in topology.devices]
        self.memo: dict[tuple[frozenset[int], int], tuple[int, ...]] = {}

    def key(self, chosen: tuple[int, ...], free: frozenset[int]) -> tuple[int, ...]:
        pairs = list(combinations(chosen, 2))
        rest = [u for u in free if u not in chosen]
        return (
            min(self.rank[a][b] for a, b in pairs),
            sum(self.bw[a][b] for a, b in pairs),
            -len({self.numa[i] for i in chosen}),
            -sum(self.bw[a][u] for a in chosen for u in rest),
        )

    def best_key(self, free: frozenset[int], count: int) -> tuple[int, ...]:
        cache_key = (free, count)
        if cache_key not in self.memo:
            self.memo[cache_key] = max(self.key(c, free) for c in combinations(sorted(free), count))
        return self.memo[cache_key]


# Simulation ------------------------------------------------------------------------
@dataclass
class Tally:
    multi_gpu: int = 0
    optimal: int = 0
    interconnect_optimal: int = 0
    refusal_utilization: list[float] = field(default_factory=list)
    decision_ms: list[float] = field(default_factory=list)
    multi_gpu_decision_ms: list[float] = field(default_factory=list)  # whole-GPU requests for 2+


def run_stream(topology: GpuTopology, placer: Placer, oracle: Oracle, events: list, tally: Tally, *, stop_at_refusal: bool, time_it: bool) -> None:
    n = topology.device_count
    free = {i: ONE for i in range(n)}
    live: dict[int, Allocation] = {}
    for job_id, (kind, payload) in enumerate(events):
        if kind == "depart":
            if live:
                ids = sorted(live)
                for i, share in live.pop(ids[int(payload * len(ids))]).items():  # type: ignore[operator]
                    free[i] += share
            continue
        request: Request = payload  # type: ignore[assignment]
        fully_free = frozenset(i for i, v in free.items() if v == ONE)
        if time_it:
            clear_allocator_memo(topology)
            started = time.perf_counter()
        allocation = placer.place(topology, free, request)
        if time_it:
            elapsed_ms = (time.perf_counter() - started) * 1e3
            tally.decision_ms.append(elapsed_ms)
            if request[0] == "whole" and request[1] >= 2:
                tally.multi_gpu_decision_ms.append(elapsed_ms)
        if allocation is None:
            if stop_at_refusal:
                tally.refusal_utilization.append(float((n - sum(free.values())) / n))
                return
            continue
        if request[0] == "whole" and request[1] >= 2:
            chosen = tuple(sorted(allocation))
            best = oracle.best_key(fully_free, len(chosen))
            got = oracle.key(chosen, fully_free)
            tally.multi_gpu += 1
            tally.optimal += got == best
            tally.interconnect_optimal += got[:2] == best[:2]
        for i, share in allocation.items():
            assert free[i] >= share, "over-allocated"
            free[i] -= share
        live[job_id] = allocation


def two_cube_meshes() -> GpuTopology:
    """Synthetic worst case: 16 GPUs without twins (two DGX-1 meshes, SYS between)."""
    base = load_topology_file(TOPOLOGY_DIR / "dgx1-v100.toml")
    links = tuple(
        tuple("X" if i == j else ("SYS" if i // 8 != j // 8 else base.links[i % 8][j % 8]) for j in range(16)) for i in range(16)
    )
    devices = tuple(
        replace(base.devices[i % 8], index=i, uuid=f"GPU-synthetic-{i}", numa_node=i // 4) for i in range(16)
    )
    return GpuTopology(devices=devices, links=links)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--streams", type=int, default=200, help="random workloads per topology")
    parser.add_argument("--steps", type=int, default=160, help="events per workload")
    args = parser.parse_args()

    topologies = {path.stem: load_topology_file(path) for path in sorted(TOPOLOGY_DIR.glob("*.toml"))}
    results: dict[str, dict[str, float]] = {}
    timings: dict[int, list[float]] = {8: [], 16: []}
    multi_timings: dict[int, list[float]] = {8: [], 16: []}
    totals = {name: Tally() for name in ("corral", "first_fit")}
    placers = [CorralPlacer(), FirstFitPlacer()]

    header = f"{'topology':34} {'GPUs':>4} {'multi':>6} {'optimal %':>10} {'ff optimal %':>13} {'link-opt %':>10} {'ff link-opt %':>13} {'util@refuse':>11} {'ff util@refuse':>14} {'p50 ms':>7} {'p99 ms':>7}"
    print(header)
    print("-" * len(header))
    for name, topology in topologies.items():
        rng = random.Random(f"{args.seed}:{name}")
        oracle = Oracle(topology)
        tallies = {placer.name: Tally() for placer in placers}
        for _ in range(args.streams):
            events = event_stream(rng, topology.device_count, args.steps)
            # Arrival-heavy and long enough that every allocator is refused at some point.
            fill_events = event_stream(rng, topology.device_count, 20 * topology.device_count, departures=0.2)
            for placer in placers:
                tally = tallies[placer.name]
                run_stream(topology, placer, oracle, events, tally, stop_at_refusal=False, time_it=placer.name == "corral")
                run_stream(topology, placer, oracle, fill_events, tally, stop_at_refusal=True, time_it=False)
        ours, ff = tallies["corral"], tallies["first_fit"]
        for key, tally in tallies.items():
            total = totals[key]
            total.multi_gpu += tally.multi_gpu
            total.optimal += tally.optimal
            total.interconnect_optimal += tally.interconnect_optimal
            total.refusal_utilization += tally.refusal_utilization
        if topology.device_count in timings:
            timings[topology.device_count] += ours.decision_ms
            multi_timings[topology.device_count] += ours.multi_gpu_decision_ms
        row = {
            "gpus": topology.device_count,
            "multi_gpu_placements": ours.multi_gpu,
            "optimal_pct": 100.0 * ours.optimal / max(1, ours.multi_gpu),
            "first_fit_optimal_pct": 100.0 * ff.optimal / max(1, ff.multi_gpu),
            "interconnect_optimal_pct": 100.0 * ours.interconnect_optimal / max(1, ours.multi_gpu),
            "first_fit_interconnect_optimal_pct": 100.0 * ff.interconnect_optimal / max(1, ff.multi_gpu),
            "util_at_first_refusal": statistics.mean(ours.refusal_utilization),
            "first_fit_util_at_first_refusal": statistics.mean(ff.refusal_utilization),
            "p50_ms": percentile(ours.decision_ms, 0.50),
            "p99_ms": percentile(ours.decision_ms, 0.99),
        }
        results[name] = row
        print(
            f"{name:34} {row['gpus']:>4} {row['multi_gpu_placements']:>6} {row['optimal_pct']:>10.1f} {row['first_fit_optimal_pct']:>13.1f}"
            f" {row['interconnect_optimal_pct']:>10.1f} {row['first_fit_interconnect_optimal_pct']:>13.1f}"
            f" {row['util_at_first_refusal']:>11.3f} {row['first_fit_util_at_first_refusal']:>14.3f} {row['p50_ms']:>7.3f} {row['p99_ms']:>7.3f}"
        )

    # Worst-case timing: no interchangeable GPUs to collapse the search.
    stress = two_cube_meshes()
    stress_tally = Tally()
    rng = random.Random(f"{args.seed}:stress")
    for _ in range(args.streams):
        run_stream(stress, CorralPlacer(), Oracle(stress), event_stream(rng, 16, args.steps), stress_tally, stop_at_refusal=False, time_it=True)
    print(
        f"\nsynthetic worst case (2x DGX-1 cube mesh, 16 GPUs, no twins): "
        f"p50 {percentile(stress_tally.decision_ms, 0.5):.3f} ms, p99 {percentile(stress_tally.decision_ms, 0.99):.3f} ms "
        f"(multi-GPU requests only: p99 {percentile(stress_tally.multi_gpu_decision_ms, 0.99):.3f} ms), "
        f"optimal {100.0 * stress_tally.optimal / max(1, stress_tally.multi_gpu):.1f} % of {stress_tally.multi_gpu}"
    )

    ours, ff = totals["corral"], totals["first_fit"]
    summary = {
        "benchmark": "gpu_alloc",
        "seed": args.seed,
        "multi_gpu_placements": ours.multi_gpu,
        "optimal_pct": round(100.0 * ours.optimal / max(1, ours.multi_gpu), 2),
        "first_fit_optimal_pct": round(100.0 * ff.optimal / max(1, ff.multi_gpu), 2),
        "interconnect_optimal_pct": round(100.0 * ours.interconnect_optimal / max(1, ours.multi_gpu), 2),
        "first_fit_interconnect_optimal_pct": round(100.0 * ff.interconnect_optimal / max(1, ff.multi_gpu), 2),
        "util_at_first_refusal": round(statistics.mean(ours.refusal_utilization), 4),
        "first_fit_util_at_first_refusal": round(statistics.mean(ff.refusal_utilization), 4),
        "p50_ms_8gpu": round(percentile(timings[8], 0.5), 4),
        "p99_ms_8gpu": round(percentile(timings[8], 0.99), 4),
        "p50_ms_16gpu": round(percentile(timings[16], 0.5), 4),
        "p99_ms_16gpu": round(percentile(timings[16], 0.99), 4),
        "multi_gpu_p50_ms_8gpu": round(percentile(multi_timings[8], 0.5), 4),
        "multi_gpu_p99_ms_8gpu": round(percentile(multi_timings[8], 0.99), 4),
        "multi_gpu_p50_ms_16gpu": round(percentile(multi_timings[16], 0.5), 4),
        "multi_gpu_p99_ms_16gpu": round(percentile(multi_timings[16], 0.99), 4),
        "multi_gpu_p99_ms_16gpu_worst_case_synthetic": round(percentile(stress_tally.multi_gpu_decision_ms, 0.99), 4),
        "p99_ms_16gpu_worst_case_synthetic": round(percentile(stress_tally.decision_ms, 0.99), 4),
        "optimal_pct_worst_case_synthetic": round(100.0 * stress_tally.optimal / max(1, stress_tally.multi_gpu), 2),
        "per_topology": {name: {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for name, row in results.items()},
    }
    summary["targets_met"] = (
        summary["optimal_pct"] == 100.0
        and summary["optimal_pct_worst_case_synthetic"] == 100.0
        and summary["p99_ms_8gpu"] <= P99_TARGET_MS[8]
        and summary["p99_ms_16gpu"] <= P99_TARGET_MS[16]
        and summary["p99_ms_16gpu_worst_case_synthetic"] <= P99_TARGET_MS[16]
        and summary["multi_gpu_p99_ms_8gpu"] <= P99_TARGET_MS[8]
        and summary["multi_gpu_p99_ms_16gpu"] <= P99_TARGET_MS[16]
    )
    print(
        f"one decision, cold memo — 8 GPUs: p50 {summary['p50_ms_8gpu']} ms, p99 {summary['p99_ms_8gpu']} ms "
        f"(multi-GPU: p99 {summary['multi_gpu_p99_ms_8gpu']} ms); 16 GPUs: p50 {summary['p50_ms_16gpu']} ms, "
        f"p99 {summary['p99_ms_16gpu']} ms (multi-GPU: p99 {summary['multi_gpu_p99_ms_16gpu']} ms)"
    )
    print(json.dumps(summary, separators=(",", ":")))


if __name__ == "__main__":
    main()
