"""How a scheduler pass grows with the cluster: N agents, M pending sessions.

Fills a fresh SQLite database with N alive agents (4-GPU workstation or
8-GPU DGX-1 topologies, alternating; 64 cores and 512 GiB each) and M
pending sessions (mixed CPU-only, fractional-GPU and 1/2/4-GPU requests),
then times one full scheduler pass (queue -> filter -> score -> reserve for
every session; the agent RPC of the bind stage is stubbed out, it is not the
scheduler's cost). The baseline in the same run is the bare database work of
that pass: loading the nodes and committing one reservation per session.
The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

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
from corral.manager.scheduler.node_view import load_node_views
from corral.manager.states import SessionStatus
from corral.manager.clock import utcnow

TOPOLOGIES = Path(__file__).resolve().parent.parent / "configs" / "gpus"
REQUESTS: list[dict[str, str]] = [
    {"cpu": "2", "mem": str(4 << 30)},
    {"cpu": "4", "mem": str(16 << 30), "cuda.shares": "0.25"},
    {"cpu": "8", "mem": str(32 << 30), "cuda.device": "1"},
    {"cpu": "8", "mem": str(64 << 30), "cuda.device": "2"},
    {"cpu": "16", "mem": str(128 << 30), "cuda.device": "4"},
]


def capacities() -> list[dict[str, Any]]:
    result = []
    for name in ("workstation-4gpu-nvlink-pairs.toml", "dgx1-v100.toml"):
        topology = load_topology_file(TOPOLOGIES / name)
        cores = tuple(range(64))
        numa = {c: c // 32 for c in cores}
        result.append(NodeCapacity(cores, 512 << 30, numa, topology.to_json()).to_json())
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
            cap = caps[i % 2]
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


async def measure(agents: int, sessions: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="sched-"))
    engine = create_engine(f"sqlite:///{root / 'bench.db'}")
    await upgrade_to_head(engine)
    sessionmaker = make_sessionmaker(engine)
    core = build_core(load_manager_config(None), sessionmaker, SingleManager(), UnusedAgents())
    scheduler = core.scheduler
    await populate(sessionmaker, agents, sessions)
    core.binder.spawn_many = lambda session_ids: []  # type: ignore[method-assign] - placement only
    dispatcher.BATCH = sessions
    started = time.perf_counter()
    placed = await scheduler.run_pass()
    pass_s = time.perf_counter() - started

    started = time.perf_counter()
    async with sessionmaker() as db:
        await load_node_views(db)
    load_s = time.perf_counter() - started
    await engine.dispose()
    return {"agents": agents, "sessions": sessions, "placed": placed, "pass_s": pass_s,
            "per_session_ms": pass_s / sessions * 1000, "load_nodes_s": load_s}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[100, 1000, 3000])
    parser.add_argument("--sessions", type=int, default=200)
    args = parser.parse_args()
    results = []
    for agents in args.agents:
        figures = await measure(agents, args.sessions)
        results.append(figures)
        print(f"{agents:>5} agents, {args.sessions} pending: pass {figures['pass_s']:.2f} s "
              f"({figures['per_session_ms']:.1f} ms per session, {figures['placed']} placed); "
              f"loading the node view alone {figures['load_nodes_s']:.2f} s")
    print(json.dumps({"benchmark": "scheduler_scale", "results": results}))


if __name__ == "__main__":
    asyncio.run(main())
