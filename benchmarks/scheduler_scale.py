"""How a scheduler pass grows with the cluster: N agents, M pending sessions.

Fills a fresh SQLite database with N alive agents (4-GPU workstation, 8-GPU
DGX-1 and CPU-only nodes, in turn; 64 cores and 512 GiB each) and M pending
sessions (CPU-only, 0.1–0.5 GPU shares, 1/2/4/8 whole GPUs), then times full
scheduler passes with device-exact fit and topology scoring (queue -> snapshot
-> policy -> candidates -> reserve; the agent RPC of the bind stage is stubbed
out, it is not the scheduler's cost). The snapshot is built by a first pass
over a small queue (the leader does that once), and reported apart.

Figures: placements per second over the whole pass (database work included),
per-decision latency (p50/p99, the planner's time per session), and the
baseline measured in the same run: the bare database work of the same pass
(reading the queue, reserving in batched transactions). The last line is one
JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from corral.common.gpu.topo_parser import load_topology_file
from corral.common.ids import new_id
from corral.common.node_resources import NodeCapacity
from corral.manager.config import load_manager_config
from corral.manager.db.engine import create_engine, make_sessionmaker
from corral.manager.db.migrate import upgrade_to_head
from corral.manager.db.models import Agent, Kernel, Session, User
from corral.manager.leader import SingleManager
from corral.manager.scheduler import dispatcher
from corral.manager.server import build_core
from corral.manager.lifecycle.occupancy import recalc_occupied
from corral.manager.scheduler.pass_inputs import plan_pass
from corral.manager.scheduler.reserve import reserve
from corral.manager.states import SessionStatus
from corral.manager.clock import utcnow

TOPOLOGIES = Path(__file__).resolve().parent.parent / "configs" / "gpus"
REQUESTS: list[dict[str, str]] = [
    {"cpu": "2", "mem": str(4 << 30)},
    {"cpu": "1", "mem": str(2 << 30)},
    {"cpu": "2", "mem": str(8 << 30), "cuda.shares": "0.1"},
    {"cpu": "4", "mem": str(16 << 30), "cuda.shares": "0.25"},
    {"cpu": "4", "mem": str(16 << 30), "cuda.shares": "0.5"},
    {"cpu": "8", "mem": str(32 << 30), "cuda.device": "1"},
    {"cpu": "8", "mem": str(64 << 30), "cuda.device": "2"},
    {"cpu": "16", "mem": str(128 << 30), "cuda.device": "4"},
    {"cpu": "32", "mem": str(256 << 30), "cuda.device": "8"},
]


def capacities() -> list[dict[str, Any]]:
    result = []
    for name in ("workstation-4gpu-nvlink-pairs.toml", "dgx1-v100.toml"):
        topology = load_topology_file(TOPOLOGIES / name)
        cores = tuple(range(64))
        numa = {c: c // 32 for c in cores}
        result.append(NodeCapacity(cores, 512 << 30, numa, topology.to_json()).to_json())
    cores = tuple(range(64))
    result.append(NodeCapacity(cores, 512 << 30, {c: c // 32 for c in cores}, None).to_json())
    return result


class UnusedAgents:
    """The agent RPC is not the scheduler's cost: binds are not started in this benchmark."""

    async def create_kernel(self, address: str, spec: dict[str, Any]) -> Any:
        raise AssertionError("not reached")

    async def destroy_kernel(self, address: str, kernel_id: str, reason: str) -> Any:
        raise AssertionError("not reached")


async def populate(sessionmaker: Any, agents: int, sessions: int) -> None:
    now = utcnow()
    caps = capacities()
    async with sessionmaker() as db:
        user = User(id=new_id(), username="bench", role="user", created_at=now)
        db.add(user)
        await db.flush()
        for i in range(agents):
            cap = caps[i % len(caps)]
            db.add(Agent(
                id=f"node-{i:05d}", address=f"http://127.0.0.1:1/{i}", status="ALIVE", capacity=cap,
                available_slots=NodeCapacity.from_json(cap).slots().to_json(), occupied_slots={}, images=[],
                first_contact=now, last_heartbeat=now,
            ))
        for i in range(sessions):
            request = REQUESTS[i % len(REQUESTS)]
            sid = new_id()
            db.add(Session(
                id=sid, name=f"s{i}", owner_id=user.id, access_key="AK", type="batch", status=SessionStatus.PENDING,
                image="x", command=["true"], env={}, requested_slots=request, mounts=[], created_at=now,
                status_changed_at=now,
            ))
            db.add(Kernel(id=new_id(), session_id=sid, status=SessionStatus.PENDING, requested_slots=request,
                          status_changed_at=now))
        await db.commit()


async def add_pending(sessionmaker: Any, sessions: int, offset: int) -> None:
    now = utcnow()
    async with sessionmaker() as db:
        user_id = (await db.execute(select(User.id))).scalar_one()
        for i in range(offset, offset + sessions):
            request = REQUESTS[i % len(REQUESTS)]
            sid = new_id()
            db.add(Session(
                id=sid, name=f"s{i}", owner_id=user_id, access_key="AK", type="batch", status=SessionStatus.PENDING,
                image="x", command=["true"], env={}, requested_slots=request, mounts=[], created_at=now,
                status_changed_at=now,
            ))
            db.add(Kernel(id=new_id(), session_id=sid, status=SessionStatus.PENDING, requested_slots=request,
                          status_changed_at=now))
        await db.commit()


async def bare_database_work(sessionmaker: Any, scheduler: Any) -> float:
    """The baseline: the pass's database work alone, on the same pending rows — read the queue, then
    reserve the placements the planner makes (fencing check, guarded moves, history, occupancy) in the
    same batches, flushed and rolled back. The planner's own time and its placements are left out."""
    async with sessionmaker() as db:
        pending = await scheduler._read_queue(db)
        await scheduler.snapshot.refresh(db, utcnow())
        plan = await scheduler._plan(db, utcnow(), pending)
    for _, candidate in plan.choices:
        candidate.node.state.release(candidate.allocation)  # the real pass takes them
    epoch = await scheduler.epoch()
    started = time.perf_counter()
    async with sessionmaker() as db:
        await scheduler._read_queue(db)
    for start in range(0, len(plan.choices), dispatcher.COMMIT_BATCH):
        batch = plan.choices[start:start + dispatcher.COMMIT_BATCH]
        async with sessionmaker() as db:
            await reserve(db, scheduler._hub, scheduler._fence, epoch, [(s.id, c, s.cluster_mode) for s, c in batch])
            await recalc_occupied(db, {c.node.agent_id for _, c in batch})
            await db.flush()
            await db.rollback()
    return time.perf_counter() - started


async def measure(agents: int, sessions: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="sched-"))
    engine = create_engine(f"sqlite:///{root / 'bench.db'}")
    await upgrade_to_head(engine)
    sessionmaker = make_sessionmaker(engine)
    core = build_core(load_manager_config(None), sessionmaker, SingleManager(), UnusedAgents())
    scheduler = core.scheduler
    await populate(sessionmaker, agents, 1)
    core.binder.spawn_many = lambda session_ids: []  # type: ignore[method-assign] - placement only
    started = time.perf_counter()
    await scheduler.run_pass()  # builds the leader's snapshot (once per leadership)
    snapshot_s = time.perf_counter() - started
    await add_pending(sessionmaker, sessions, 1)
    baseline_s = await bare_database_work(sessionmaker, scheduler)

    decisions: list[float] = []
    real_plan = scheduler._plan

    async def timed_plan(db: Any, now: Any, pending: Any) -> Any:
        result = await plan_pass(db, now, pending, scheduler.snapshot, scheduler._config, scheduler._decayed,
                                 decision_times=decisions)
        return result

    scheduler._plan = timed_plan  # type: ignore[method-assign]
    started = time.perf_counter()
    placed = await scheduler.run_pass()
    pass_s = time.perf_counter() - started
    scheduler._plan = real_plan  # type: ignore[method-assign]
    timings = dict(scheduler.last_timings)
    gaps = sorted(b - a for a, b in zip(decisions, decisions[1:]))
    await engine.dispose()
    return {
        "agents": agents, "sessions": sessions, "placed": placed, "pass_s": round(pass_s, 4),
        "placements_per_s": round(placed / pass_s, 1) if pass_s else 0.0,
        "decision_p50_ms": round(_pct(gaps, 50) * 1000, 3), "decision_p99_ms": round(_pct(gaps, 99) * 1000, 3),
        "snapshot_build_s": round(snapshot_s, 3), "baseline_db_s": round(baseline_s, 4),
        "ratio_to_baseline": round(pass_s / baseline_s, 2) if baseline_s else 0.0,
        **{k: round(v, 4) for k, v in timings.items()},
    }


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--sessions", type=int, default=2000)
    args = parser.parse_args()
    results = []
    for agents in args.agents:
        f = await measure(agents, args.sessions)
        results.append(f)
        print(f"{agents:>6} agents, {args.sessions} pending: {f['placed']} placed in {f['pass_s']:.2f} s = "
              f"{f['placements_per_s']:.0f} placements/s; decision p50 {f['decision_p50_ms']:.2f} ms, "
              f"p99 {f['decision_p99_ms']:.2f} ms; bare database work {f['baseline_db_s']:.2f} s "
              f"(pass = {f['ratio_to_baseline']:.2f}x it); snapshot built once in {f['snapshot_build_s']:.2f} s")
    print(json.dumps({"benchmark": "scheduler_scale", "results": results}))


if __name__ == "__main__":
    asyncio.run(main())
