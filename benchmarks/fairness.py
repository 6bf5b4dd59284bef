"""Fair sharing over a simulated day, through the real planner (`corral.manager.scheduler.simulation`).

Three users with fair-share weights 1:2:1 submit a stream of 1,000 mixed jobs (0.25–0.5 GPU shares,
1/2/4/8 whole GPUs, 10 minutes to 3 hours) to a group of 8 DGX-1 nodes (64 GPUs), enough that each
always has work waiting. For ``fair-share`` and ``drf``: each user's GPU-hours received over the day
against their fair share of what was delivered (target: within 5 %). For ``fifo`` with backfill against
strict ``fifo`` (backfill off): the 8-GPU jobs' waits and the cluster's GPU utilisation.
The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from corral.common.gpu.topo_parser import load_topology_file
from corral.common.node_resources import NodeCapacity
from corral.common.slots import ResourceSlot
from corral.manager.scheduler.groups import GroupSettings
from corral.manager.scheduler.simulation import Job, Simulation, make_nodes

TOPOLOGY = Path(__file__).resolve().parent.parent / "configs" / "gpus" / "dgx1-v100.toml"
USERS = {"ada": 1.0, "bo": 2.0, "cy": 1.0}
DAY = 24 * 3600.0
GPU_CHOICES = [("cuda.shares", "0.25"), ("cuda.shares", "0.5"), ("cuda.device", "1"), ("cuda.device", "2"),
               ("cuda.device", "4"), ("cuda.device", "8")]


def cluster(nodes: int) -> list[NodeCapacity]:
    topology = load_topology_file(TOPOLOGY).to_json()
    cores = tuple(range(80))
    return [NodeCapacity(cores, 768 << 30, {c: c // 40 for c in cores}, topology) for _ in range(nodes)]


def workload(jobs: int, seed: int, arrive_within_s: float) -> list[Job]:
    rng = random.Random(seed)
    result = []
    users = list(USERS)
    for i in range(jobs):
        slot, amount = rng.choice(GPU_CHOICES)
        gpus = float(amount)
        request = ResourceSlot({"cpu": max(1, int(gpus * 8)), "mem": int(max(gpus, 0.25) * (32 << 30)), slot: amount})
        duration = rng.uniform(600, 3 * 3600)
        result.append(Job(f"j{i:04d}", users[i % len(users)], rng.uniform(0, arrive_within_s), duration, request,
                          limit_s=duration * 1.25))
    return result


def run(policy: str, backfill: bool, jobs: list[Job], nodes: int) -> dict[str, object]:
    settings = GroupSettings("default", policy, backfill, False, (("topology", 1.0),))
    sim = Simulation(make_nodes(cluster(nodes)), settings, shares=USERS)
    started = time.perf_counter()
    result = sim.run(jobs, DAY)
    wall = time.perf_counter() - started
    delivered = sum(result.gpu_seconds.values())
    weight_sum = sum(USERS.values())
    deviation = {
        user: round((result.gpu_seconds.get(user, 0.0) - delivered * w / weight_sum) / (delivered * w / weight_sum), 4)
        for user, w in USERS.items()
    }
    big = [r for r in result.results.values() if r.job.request.get("cuda.device", 0) == 8]
    waits = sorted(r.wait_s if r.wait_s is not None else DAY - r.job.submit_s for r in big)
    return {
        "policy": policy, "backfill": backfill, "passes": result.passes, "sim_wall_s": round(wall, 2),
        "utilization": round(result.utilization, 4),
        "gpu_hours": {u: round(s / 3600, 1) for u, s in result.gpu_seconds.items()},
        "fair_share_deviation": deviation, "max_abs_deviation": round(max(abs(d) for d in deviation.values()), 4),
        "big_jobs": len(big), "big_started": sum(1 for r in big if r.start_s is not None),
        "big_wait_mean_h": round(sum(waits) / len(waits) / 3600, 2) if waits else 0.0,
        "big_wait_max_h": round(waits[-1] / 3600, 2) if waits else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    jobs = workload(args.jobs, args.seed, arrive_within_s=6 * 3600)
    rows = [run("fair-share", True, jobs, args.nodes), run("drf", True, jobs, args.nodes),
            run("fifo", True, jobs, args.nodes), run("fifo", False, jobs, args.nodes)]
    for row in rows:
        label = f"{row['policy']}{'+backfill' if row['backfill'] else ' (strict)'}"
        print(f"{label:<20} utilisation {row['utilization']:.1%}; GPU-hours {row['gpu_hours']}; "
              f"deviation from fair share max {row['max_abs_deviation']:.1%}; 8-GPU jobs started "
              f"{row['big_started']}/{row['big_jobs']}, wait mean {row['big_wait_mean_h']} h, "
              f"max {row['big_wait_max_h']} h ({row['passes']} passes, {row['sim_wall_s']} s)")
    print(json.dumps({"benchmark": "fairness", "results": rows}))


if __name__ == "__main__":
    main()
