"""The Docker container configuration for one kernel (pure, testable)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from corral.kernels import contract, services

from ..config import AgentConfig
from ..gpu_enforcement import GpuContainerSettings, container_gpu_settings, mps_root
from ..kernel_spec import KernelSpec
from .cluster_container import SINGLE_NODE_INTERFACE, cluster_binds, cluster_env, network_settings

KERNELS_MOUNT = contract.CONTAINER_KERNELS_DIR
# [sessions] share_pip_config: where the node's pip configuration appears in containers.
PIP_GLOBAL_CONFIG_FILES = ("/etc/xdg/pip/pip.conf", "/etc/pip.conf")  # mounted at the same paths
CONTAINER_PIP_CONFIG = "/etc/corral/pip.conf"
CONTAINER_CA_BUNDLE = "/etc/corral/ca-certificates.crt"
_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def pip_config_mounts(
    config: AgentConfig,
    environ: Mapping[str, str] = os.environ,
    *,
    home: Path | None = None,
    global_files: tuple[str, ...] = PIP_GLOBAL_CONFIG_FILES,
) -> tuple[list[str], dict[str, str]]:
    """Read-only binds and env that give a container the node's pip configuration and CA bundle, when
    ``[sessions] share_pip_config`` is on (else nothing). Only files that exist are mounted."""
    sessions = config.sessions
    if not sessions.share_pip_config:
        return [], {}
    binds: list[str] = []
    env: dict[str, str] = {}
    user_home = home if home is not None else Path(environ.get("HOME") or Path.home())
    disabled = environ.get("PIP_CONFIG_FILE") == os.devnull  # pip then reads no file at all
    if not disabled:
        binds += [f"{path}:{path}:ro" for path in global_files if Path(path).is_file()]
        config_home = Path(environ.get("XDG_CONFIG_HOME") or user_home / ".config")
        candidates = [sessions.pip_config_file] if sessions.pip_config_file else [
            environ.get("PIP_CONFIG_FILE", ""), str(config_home / "pip" / "pip.conf"), str(user_home / ".pip" / "pip.conf"),
        ]
        user_file = next((path for path in candidates if path and Path(path).is_file()), None)
        if user_file is not None:
            binds.append(f"{Path(user_file).resolve()}:{CONTAINER_PIP_CONFIG}:ro")
            env["PIP_CONFIG_FILE"] = CONTAINER_PIP_CONFIG
    bundles = [sessions.ca_bundle] if sessions.ca_bundle else [
        environ.get("PIP_CERT", ""), environ.get("SSL_CERT_FILE", ""), *_CA_BUNDLES,
    ]
    bundle = next((path for path in bundles if path and Path(path).is_file()), None)
    if bundle is not None:
        binds.append(f"{Path(bundle).resolve()}:{CONTAINER_CA_BUNDLE}:ro")
        env.update({"PIP_CERT": CONTAINER_CA_BUNDLE, "SSL_CERT_FILE": CONTAINER_CA_BUNDLE,
                    "REQUESTS_CA_BUNDLE": CONTAINER_CA_BUNDLE})
    return binds, env


def kernel_env(
    spec: KernelSpec, gpu: GpuContainerSettings | None = None, services_env: str = "",
    cluster_interface: str | None = None,
) -> dict[str, str]:
    """The session's env, then Corral's (which wins): identity, limits, services, cluster, GPU settings.

    ``cluster_interface``: a multi-node cluster kernel's network device for GLOO/NCCL (None: unknown)."""
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
    if spec.cluster is not None:
        single_node = spec.cluster.mode == "single-node"
        env.update(cluster_env(spec.cluster, SINGLE_NODE_INTERFACE if single_node else cluster_interface))
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
    services_env: str = "", cluster_interface: str | None = None,
) -> dict[str, Any]:
    alloc = spec.resources
    gpu = gpu_settings(spec, config)
    pip_binds, pip_env = pip_config_mounts(config)
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
            *pip_binds,  # [sessions] share_pip_config: the node's pip config and CA bundle, read-only
            *(cluster_binds(kernel_dir) if spec.cluster is not None else []),  # the peers' ssh client config
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
    network: dict[str, Any] = {}
    if spec.cluster is not None:  # its session's network (single-node) or the node's (multi-node)
        host_network, network = network_settings(spec.cluster, spec.session_id)
        host_config.update(host_network)
    env = {**pip_env, **kernel_env(spec, gpu, services_env, cluster_interface)}
    return {
        "Image": spec.image,
        "Cmd": cmd,
        "Env": [f"{k}={v}" for k, v in env.items()],
        "Labels": labels,
        "User": f"{config.docker.kernel_uid}:{config.docker.kernel_gid}",
        "HostConfig": host_config,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        **network,
    }
