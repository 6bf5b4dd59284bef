"""Session start-up cost through Corral versus the same container work done directly.

30 sequential sessions: create -> RUNNING -> execute ``print(1+1)`` -> destroy
(until TERMINATED), through the embedded stack and the SDK. In the same run,
the direct path does the same container work with aiodocker: create + start
the same image with the same mounts and limits, wait for the runner, run
the code through its socket, stop + remove.

Prints p50/p95 of create->RUNNING and of the whole cycle, and the ratio of
Corral's whole cycle to the direct one. The last line is one JSON object.
Targets (issue 3): p50 create->RUNNING <= 1.0 s, whole-cycle overhead <= 2x direct.
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
from pathlib import Path

import aiodocker

from corral.agent import runner_client
from corral.agent.server import kernels_package_dir
from corral.client.api import AsyncCorralClient
from corral.client.config import ClientConfig
from corral.client.embedded_stack import EmbeddedStack
from corral.kernels.builder import build_image

IMAGE = "corral/python:latest"
CODE = "print(1+1)"


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
            kernel_dir.mkdir(parents=True)
            os.chmod(kernel_dir, 0o777)
            started = time.perf_counter()
            container = await docker.containers.create(
                {
                    "Image": IMAGE,
                    "Cmd": ["python3", "/opt/corral/runner.py"],
                    "User": "1000:1000",
                    "HostConfig": {
                        "NanoCpus": 1_000_000_000,
                        "Memory": 256 << 20,
                        "PidsLimit": 4096,
                        "Binds": [f"{kernels_package_dir()}:/opt/corral:ro", f"{kernel_dir}:/run/corral:rw"],
                    },
                }
            )
            await container.start()
            socket_path = kernel_dir / runner_client.SOCKET_NAME
            await runner_client.wait_until_ready(socket_path, 60)
            to_running.append(time.perf_counter() - started)
            output = [e async for e in runner_client.execute(socket_path, CODE) if e.get("op") == "output"]
            assert "".join(e["data"] for e in output) == "2\n"
            await container.stop(t=3)
            await container.delete(force=True)
            whole.append(time.perf_counter() - started)
    return to_running, whole


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    args = parser.parse_args()
    await build_image("python")
    root = Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))
    try:
        # Warm both paths once (image layers in the page cache, Python imports).
        await direct_cycles(1, root / "warm")
        direct = summary("direct", *await direct_cycles(args.sessions, root))
        corral = summary("corral", *await corral_cycles(args.sessions, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratio = corral["cycle_p50_s"] / direct["cycle_p50_s"]
    running_ratio = corral["running_p50_s"] / direct["running_p50_s"]
    print(f"whole-cycle ratio corral/direct (p50): {ratio:.2f}x; create->RUNNING ratio: {running_ratio:.2f}x")
    targets = corral["running_p50_s"] <= 1.0 and ratio <= 2.0
    print(json.dumps({
        "benchmark": "session_start",
        "sessions": args.sessions,
        "corral": {k: round(v, 4) for k, v in corral.items()},
        "direct": {k: round(v, 4) for k, v in direct.items()},
        "cycle_ratio_p50": round(ratio, 3),
        "running_ratio_p50": round(running_ratio, 3),
        "targets": {"running_p50_s_max": 1.0, "cycle_ratio_max": 2.0},
        "targets_met": targets,
    }))


if __name__ == "__main__":
    asyncio.run(main())
