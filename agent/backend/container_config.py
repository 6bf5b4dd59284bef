"""The Docker container configuration for one kernel (pure, testable)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from corral.kernels import contract, services

from ..config import AgentConfig
from ..gpu_enforcement import GpuContainerSettings, container_gpu_settings, mps_root
from ..kernel_spec import KernelSpec

KERNELS_MOUNT = contract.CONTAINER_KERNELS_DIR


def kernel_env(spec: KernelSpec, gpu: GpuContainerSettings | None = None, services_env: str = "") -> dict[str, str]:
    """The session's env, then Corral's (which wins): identity, limits, services, GPU settings."""
    alloc = spec.resources
    env = dict(spec.env)
    env.update(
        {
            contract.SESSION_ID_ENV: spec.session_id,
            contract.SESSION_NAME_ENV: spec.session_name,
            contract.KERNEL_ID_ENV: spec.kernel_id,
            contract.CPU_ENV: str(alloc.cpu),
            contract.MEM_ENV: str(alloc.mem),
            contract.CPU_CORES_ENV: ",".join(str(c) for c in alloc.cpu_cores),
        }
    )
    if services_env:
        env[services.SERVICES_ENV] = services_env
    if gpu is not None:
        env.update(gpu.env)
    return env


def gpu_settings(spec: KernelSpec, config: AgentConfig) -> GpuContainerSettings:
    return container_gpu_settings(
        spec.allocation,
        config.gpu,
        kernels_mount=KERNELS_MOUNT,
        mps_root=mps_root(config),
        session_pythonpath=spec.env.get("PYTHONPATH"),
    )


def build_container_config(
    spec: KernelSpec, config: AgentConfig, kernel_dir: Path, kernels_pkg_dir: Path, labels: dict[str, str],
    services_env: str = "",
) -> dict[str, Any]:
    alloc = spec.resources
    gpu = gpu_settings(spec, config)
    if spec.type == "batch" and spec.command:
        cmd = contract.batch_command(spec.command)
    else:
        cmd = contract.interactive_command()
    host_config: dict[str, Any] = {
        "NanoCpus": int(alloc.cpu * 1_000_000_000),
        "Memory": alloc.mem,
        "MemorySwap": alloc.mem,  # no swap beyond the limit
        "PidsLimit": config.docker.pids_limit,
        "Binds": [
            *contract.bind_mounts(kernel_dir, kernels_pkg_dir),
            *gpu.binds,
            *(mount.bind() for mount in spec.mounts),  # vfolders, owned by the kernel user (1000)
        ],
        "Privileged": False,
        "SecurityOpt": ["no-new-privileges"],
        "CapDrop": ["ALL"],
        "Init": False,
        "RestartPolicy": {"Name": "no"},
    }
    # Mock GPU nodes advertise the topology file's cores, not this host's:
    # they get the quota above but are never pinned.
    if config.resources.cpu_pinning and alloc.cpu_cores and config.gpu.plugin != "mock":
        host_config["CpusetCpus"] = ",".join(str(c) for c in alloc.cpu_cores)
    if gpu.device_requests:
        host_config["DeviceRequests"] = gpu.device_requests
    if gpu.ipc_mode:
        host_config["IpcMode"] = gpu.ipc_mode
    return {
        "Image": spec.image,
        "Cmd": cmd,
        "Env": [f"{k}={v}" for k, v in kernel_env(spec, gpu, services_env).items()],
        "Labels": labels,
        "User": f"{config.docker.kernel_uid}:{config.docker.kernel_gid}",
        "HostConfig": host_config,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
    }
