"""The Docker container configuration for one kernel (pure, testable)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import AgentConfig
from ..kernel_spec import KernelSpec

KERNELS_MOUNT = "/opt/corral"
RUNNER_DIR_MOUNT = "/run/corral"
RUNNER = f"{KERNELS_MOUNT}/runner.py"


def kernel_env(spec: KernelSpec) -> dict[str, str]:
    alloc = spec.resources
    env = dict(spec.env)
    env.update(
        {
            "CORRAL_SESSION_ID": spec.session_id,
            "CORRAL_SESSION_NAME": spec.session_name,
            "CORRAL_KERNEL_ID": spec.kernel_id,
            "CORRAL_CPU": str(alloc.cpu),
            "CORRAL_MEM": str(alloc.mem),
            "CORRAL_CPU_CORES": ",".join(str(c) for c in alloc.cpu_cores),
        }
    )
    return env


def build_container_config(
    spec: KernelSpec, config: AgentConfig, kernel_dir: Path, kernels_pkg_dir: Path, labels: dict[str, str]
) -> dict[str, Any]:
    alloc = spec.resources
    cmd = ["python3", RUNNER]
    if spec.type == "batch" and spec.command:
        cmd += ["--batch", "--", *spec.command]
    host_config: dict[str, Any] = {
        "NanoCpus": int(alloc.cpu * 1_000_000_000),
        "Memory": alloc.mem,
        "MemorySwap": alloc.mem,  # no swap beyond the limit
        "PidsLimit": config.docker.pids_limit,
        "Binds": [f"{kernels_pkg_dir}:{KERNELS_MOUNT}:ro", f"{kernel_dir}:{RUNNER_DIR_MOUNT}:rw"],
        "Privileged": False,
        "SecurityOpt": ["no-new-privileges"],
        "CapDrop": ["ALL"],
        "Init": False,
        "RestartPolicy": {"Name": "no"},
    }
    if config.resources.cpu_pinning and alloc.cpu_cores:
        host_config["CpusetCpus"] = ",".join(str(c) for c in alloc.cpu_cores)
    return {
        "Image": spec.image,
        "Cmd": cmd,
        "Env": [f"{k}={v}" for k, v in kernel_env(spec).items()],
        "Labels": labels,
        "User": f"{config.docker.kernel_uid}:{config.docker.kernel_gid}",
        "HostConfig": host_config,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
    }
