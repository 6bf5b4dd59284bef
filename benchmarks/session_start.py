"""Session start-up cost through Corral versus the same container work done directly.

30 sequential sessions: create -> RUNNING -> execute ``print(1+1)`` -> destroy
(until TERMINATED), through the embedded stack and the SDK. In the same run,
the direct path does the same container work with aiodocker: create + start
the same image with the same mounts and limits, wait for the runner, run
the code through its socket, stop + remove.

Prints p50/p95 of create->RUNNING and of the whole cycle, and the ratio of
Corral's whole cycle to the direct one. The last line is one JSON object.
Targets (issue 3): p50 create->RUNNING <= 1.0 s, whole-cycle overhead <= 2x direct.

``--burst N`` instead creates N sessions at once and times until all are
RUNNING, then destroys them all at once; the direct baseline, in the same run,
creates + starts N containers at once with aiodocker and waits for all their
runners. It reports the ratio of the two, errors, containers left behind
after the destroy (by Corral's labels; should be 0), and where Corral's time
went per kernel (scheduling, bind, Docker, runner start, event delivery).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiodocker

from corral.agent import runner_client
from corral.agent.backend.base import LABEL_AGENT
from corral.kernels import contract
from corral.client.api import AsyncCorralClient
from corral.client.config import ClientConfig
from corral.client.embedded_stack import EmbeddedStack
from corral.kernels.builder import build_image

IMAGE = "corral/python:latest"
CODE = "print(1+1)"
BURST_LABEL = "ai.corral.benchmark-run"  # the direct baseline's containers, to find leftovers
BURST_TIMEOUT_S = 300.0
LEAK_GRACE_S = 2.0  # after the last TERMINATED, before counting containers left behind


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def corral_cycles(count: int, root: Path) -> tuple[list[float], list[float]]:
    stack = EmbeddedStack(root / "stack", "127.0.0.1", 0, write_client_config=False)
    await stack.start()
    config = ClientConfig(stack.manager.url, stack.secrets.admin_access_key, stack.secrets.admin_secret_key)
    to_running, whole = [], []
    try:
        async with AsyncCorralClient(config) as client:
            for _ in range(count):
                started = time.perf_counter()
                session = await client.create_session(resources={"cpu": "1", "mem": "256m"})
                await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
                to_running.append(time.perf_counter() - started)
                result = await client.execute_collect(session.id, CODE)
                assert result.stdout == "2\n", result
                await client.destroy_session(session.id)
                await client.wait_for_status(session.id, {"TERMINATED"}, timeout=60)
                whole.append(time.perf_counter() - started)
    finally:
        await stack.stop()
    return to_running, whole


async def direct_cycles(count: int, root: Path) -> tuple[list[float], list[float]]:
    to_running, whole = [], []
    async with aiodocker.Docker() as docker:
        for i in range(count):
            kernel_dir = root / "direct" / str(i)
            socket_path = contract.prepare_runner_dir(kernel_dir)
            started = time.perf_counter()
            container = await docker.containers.create(direct_container_config(kernel_dir))
            await container.start()
            await runner_client.wait_until_ready(socket_path, 60)
            to_running.append(time.perf_counter() - started)
            output = [e async for e in runner_client.execute_events(socket_path, CODE) if e.get("op") == "output"]
            assert "".join(e["data"] for e in output) == "2\n"
            await container.stop(t=3)
            await container.delete(force=True)
            whole.append(time.perf_counter() - started)
    return to_running, whole


def direct_container_config(kernel_dir: Path, labels: dict[str, str] | None = None) -> dict:
    """What the agent gives Docker for a 1-CPU, 256 MiB interactive kernel, minus Corral's bookkeeping."""
    return {
        "Image": IMAGE,
        "Cmd": contract.interactive_command(),
        "User": "1000:1000",
        "Labels": labels or {},
        "HostConfig": {
            "NanoCpus": 1_000_000_000,
            "Memory": 256 << 20,
            "MemorySwap": 256 << 20,
            "PidsLimit": 4096,
            "Binds": contract.bind_mounts(kernel_dir),
            "SecurityOpt": ["no-new-privileges"],
            "CapDrop": ["ALL"],
        },
    }


def summary(name: str, to_running: list[float], whole: list[float]) -> dict[str, float]:
    figures = {
        "running_p50_s": statistics.median(to_running),
        "running_p95_s": percentile(to_running, 95),
        "cycle_p50_s": statistics.median(whole),
        "cycle_p95_s": percentile(whole, 95),
    }
    print(
        f"{name:>7}: create->RUNNING p50 {figures['running_p50_s']:.3f} s  p95 {figures['running_p95_s']:.3f} s | "
        f"whole cycle p50 {figures['cycle_p50_s']:.3f} s  p95 {figures['cycle_p95_s']:.3f} s"
    )
    return figures


# -- burst ---------------------------------------------------------------------------


def _elapsed(results: list[Any]) -> list[float]:
    return [r for r in results if isinstance(r, float)]


def _errors(results: list[Any]) -> list[str]:
    return [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]


async def _containers_labelled(docker: aiodocker.Docker, label: str) -> list[str]:
    found = await docker.containers.list(all=True, filters=json.dumps({"label": [label]}))
    return [c.id for c in found]


async def _remove_all(docker: aiodocker.Docker, container_ids: list[str]) -> None:
    await asyncio.gather(
        *(docker.containers.container(cid).delete(force=True) for cid in container_ids), return_exceptions=True
    )


async def direct_burst(count: int, root: Path) -> dict[str, Any]:
    run_label = f"{BURST_LABEL}={root.name}"
    key, value = run_label.split("=", 1)
    async with aiodocker.Docker() as docker:
        sockets = [contract.prepare_runner_dir(root / "direct-burst" / str(i)) for i in range(count)]
        containers: list[Any] = []
        started = time.perf_counter()

        async def start_one(socket_path: Path) -> float:
            container = await docker.containers.create(direct_container_config(socket_path.parent, {key: value}))
            containers.append(container)
            await container.start()
            await runner_client.wait_until_ready(socket_path, BURST_TIMEOUT_S)
            return time.perf_counter() - started

        results = await asyncio.gather(*(start_one(p) for p in sockets), return_exceptions=True)
        all_running = time.perf_counter() - started

        async def remove_one(container: Any) -> None:
            await container.stop(t=3)
            await container.delete(force=True)

        destroy_started = time.perf_counter()
        destroyed = await asyncio.gather(*(remove_one(c) for c in containers), return_exceptions=True)
        destroy_s = time.perf_counter() - destroy_started
        await asyncio.sleep(LEAK_GRACE_S)
        leaked = await _containers_labelled(docker, run_label)
        await _remove_all(docker, leaked)
    return {
        "all_running_s": all_running,
        "running_p50_s": statistics.median(_elapsed(results) or [float("nan")]),
        "destroy_all_s": destroy_s,
        "errors": _errors(results) + _errors(destroyed),
        "leaked_containers": len(leaked),
    }


class AgentTimings:
    """Wraps the embedded agent's Docker call and event sender to see, per kernel,
    when Docker was asked, when it answered, and when the runner was found ready."""

    def __init__(self, agent: Any) -> None:
        self.docker_started: dict[str, float] = {}
        self.docker_done: dict[str, float] = {}
        self.running_sent: dict[str, float] = {}
        start_kernel = agent.backend.start_kernel
        send_event = agent.link.send_event

        async def timed_start_kernel(spec: Any, *args: Any, **kwargs: Any) -> str:
            self.docker_started[spec.kernel_id] = time.time()
            try:
                return await start_kernel(spec, *args, **kwargs)
            finally:
                self.docker_done[spec.kernel_id] = time.time()

        def timed_send_event(kind: str, kernel_id: str, **fields: Any) -> None:
            if kind == "kernel.running":
                self.running_sent[kernel_id] = time.time()
            send_event(kind, kernel_id, **fields)

        agent.backend.start_kernel = timed_start_kernel
        agent.link.send_event = timed_send_event


def _status_at(session: Any, status: str) -> float | None:
    for change in session.status_history:
        if change.status == status and isinstance(change.at, datetime):
            return change.at.timestamp()
    return None


def stage_breakdown(sessions: list[Any], timings: AgentTimings) -> dict[str, dict[str, float]]:
    """Median and max seconds of each step, over the sessions that got there."""
    steps: dict[str, list[float]] = {
        "queued (created -> SCHEDULED)": [],
        "bind (SCHEDULED -> agent calls Docker)": [],
        "docker (image check + create + start)": [],
        "runner (started -> answers ping)": [],
        "report (kernel.running -> RUNNING)": [],
    }
    names = list(steps)
    for session in sessions:
        if not session.kernels or session.created_at is None:
            continue
        kernel_id = session.kernels[0].id
        points = [
            session.created_at.timestamp(), _status_at(session, "SCHEDULED"), timings.docker_started.get(kernel_id),
            timings.docker_done.get(kernel_id), timings.running_sent.get(kernel_id), _status_at(session, "RUNNING"),
        ]
        for name, (begin, end) in zip(names, zip(points, points[1:])):
            if begin is not None and end is not None:
                steps[name].append(end - begin)
    return {
        name: {"p50_s": round(statistics.median(values), 4), "max_s": round(max(values), 4)}
        for name, values in steps.items() if values
    }


async def corral_burst(count: int, root: Path) -> dict[str, Any]:
    # One node must hold the whole burst: 1 CPU each, whatever this host has.
    os.environ.setdefault("CORRAL_AGENT_RESOURCES__CPU_COUNT", str(max(count, os.cpu_count() or 1)))
    stack = EmbeddedStack(root / "stack", "127.0.0.1", 0, write_client_config=False)
    await stack.start()
    timings = AgentTimings(stack.agent)
    config = ClientConfig(stack.manager.url, stack.secrets.admin_access_key, stack.secrets.admin_secret_key)
    agent_label = f"{LABEL_AGENT}={stack.agent.agent_id}"
    try:
        async with AsyncCorralClient(config) as client:
            session_ids: list[str] = []
            started = time.perf_counter()

            async def start_one() -> float:
                session = await client.create_session(resources={"cpu": "1", "mem": "256m"})
                session_ids.append(session.id)
                await client.wait_for_status(session.id, {"RUNNING"}, timeout=BURST_TIMEOUT_S)
                return time.perf_counter() - started

            results = await asyncio.gather(*(start_one() for _ in range(count)), return_exceptions=True)
            all_running = time.perf_counter() - started
            sessions = await asyncio.gather(*(client.get_session(sid) for sid in session_ids))

            async def destroy_one(session_id: str) -> None:
                await client.destroy_session(session_id)
                await client.wait_for_status(session_id, {"TERMINATED", "CANCELLED"}, timeout=BURST_TIMEOUT_S)

            destroy_started = time.perf_counter()
            destroyed = await asyncio.gather(*(destroy_one(sid) for sid in session_ids), return_exceptions=True)
            destroy_s = time.perf_counter() - destroy_started
        await asyncio.sleep(LEAK_GRACE_S)
        async with aiodocker.Docker() as docker:
            leaked = await _containers_labelled(docker, agent_label)
    finally:
        await stack.stop()
    if leaked:
        async with aiodocker.Docker() as docker:
            await _remove_all(docker, leaked)
    return {
        "all_running_s": all_running,
        "running_p50_s": statistics.median(_elapsed(results) or [float("nan")]),
        "destroy_all_s": destroy_s,
        "errors": _errors(results) + _errors(destroyed),
        "leaked_containers": len(leaked),
        "stages": stage_breakdown(sessions, timings),
    }


def print_burst(name: str, figures: dict[str, Any]) -> None:
    print(
        f"{name:>7}: all RUNNING {figures['all_running_s']:.3f} s (p50 {figures['running_p50_s']:.3f} s) | "
        f"all destroyed {figures['destroy_all_s']:.3f} s | errors {len(figures['errors'])} | "
        f"leaked containers {figures['leaked_containers']}"
    )
    for error in figures["errors"][:5]:
        print(f"         error: {error}")
    for stage, values in figures.get("stages", {}).items():
        print(f"         {stage:<42} p50 {values['p50_s']:.3f} s  max {values['max_s']:.3f} s")


async def burst_main(count: int) -> None:
    await build_image("python")
    root = Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))
    try:
        await direct_cycles(1, root / "warm")
        direct = await direct_burst(count, root)
        print_burst("direct", direct)
        corral = await corral_burst(count, root)
        print_burst("corral", corral)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratio = corral["all_running_s"] / direct["all_running_s"]
    print(f"burst of {count}: all-RUNNING ratio corral/direct {ratio:.2f}x")
    print(json.dumps({
        "benchmark": "session_start_burst",
        "sessions": count,
        "corral": {k: round(v, 4) if isinstance(v, float) else v for k, v in corral.items() if k != "errors"},
        "direct": {k: round(v, 4) if isinstance(v, float) else v for k, v in direct.items() if k != "errors"},
        "corral_errors": len(corral["errors"]),
        "direct_errors": len(direct["errors"]),
        "all_running_ratio": round(ratio, 3),
        "leaked_containers": corral["leaked_containers"],
    }))


async def sequential_main(count: int) -> None:
    await build_image("python")
    root = Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))
    try:
        # Warm both paths once (image layers in the page cache, Python imports).
        await direct_cycles(1, root / "warm")
        direct = summary("direct", *await direct_cycles(count, root))
        corral = summary("corral", *await corral_cycles(count, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratio = corral["cycle_p50_s"] / direct["cycle_p50_s"]
    running_ratio = corral["running_p50_s"] / direct["running_p50_s"]
    print(f"whole-cycle ratio corral/direct (p50): {ratio:.2f}x; create->RUNNING ratio: {running_ratio:.2f}x")
    targets = corral["running_p50_s"] <= 1.0 and ratio <= 2.0
    print(json.dumps({
        "benchmark": "session_start",
        "sessions": count,
        "corral": {k: round(v, 4) for k, v in corral.items()},
        "direct": {k: round(v, 4) for k, v in direct.items()},
        "cycle_ratio_p50": round(ratio, 3),
        "running_ratio_p50": round(running_ratio, 3),
        "targets": {"running_p50_s_max": 1.0, "cycle_ratio_max": 2.0},
        "targets_met": targets,
    }))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--burst", type=int, default=0, metavar="N", help="N sessions at once instead")
    args = parser.parse_args()
    if args.burst:
        await burst_main(args.burst)
    else:
        await sequential_main(args.sessions)


if __name__ == "__main__":
    asyncio.run(main())
