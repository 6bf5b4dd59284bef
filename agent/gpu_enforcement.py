"""What a kernel's GPU allocation becomes in its container (DESIGN §4).

Pure translation (`container_gpu_settings`, the MPS command builders) plus
the two pieces with I/O: `MpsDaemons` (one MPS control daemon per GPU,
started lazily) and `GpuEnforcer`, which the kernel manager asks to check each kernel's GPUs
against this node's topology and prepares MPS before the container backend
creates the container.

Whole GPUs and fractions alike get the devices by UUID through a Docker
device request (``Driver "nvidia"``, ``DeviceIDs``, ``Capabilities
[["gpu"]]``) — only with the `cuda` plugin, i.e. on a node that really has
the NVIDIA container runtime. The `mock` plugin's GPUs do not exist, so its
kernels get no device request and ``NVIDIA_VISIBLE_DEVICES=void``;
everything else (env, sitecustomize, the allocation record) is identical.

Inside every GPU kernel (lists comma-separated, one entry per device, in the
order CUDA numbers them inside the container, which is ascending host index):

    CORRAL_GPU_DEVICES    GPU UUIDs, e.g. GPU-5f3c…,GPU-9a1e…
    CORRAL_GPU_INDEXES    the same GPUs' host (NVML) indexes, e.g. 2,3
    CORRAL_GPU_SHARES     share per device, e.g. 0.25 or 1,1
    CORRAL_GPU_MEM_LIMIT  share × device memory per device, bytes
    CORRAL_GPU_SHARING    exclusive (whole GPUs) | framework | mps | none
    CUDA_VISIBLE_DEVICES  the UUIDs (fixes CUDA's order to the one above)
    NVIDIA_VISIBLE_DEVICES  the UUIDs (what the device request exposes; `void` in mock mode)

Kernels without GPUs get ``NVIDIA_VISIBLE_DEVICES=void`` so that a CUDA
image on a host whose default runtime is NVIDIA's sees no GPU.

Fractions, by node config ``gpu.sharing``:

- ``framework``: ``PYTHONPATH=/opt/corral/gpu`` (before the session's own
  PYTHONPATH) so Python imports kernels/gpu/sitecustomize.py, which limits
  PyTorch and TensorFlow when they are imported, and
  ``XLA_PYTHON_CLIENT_MEM_FRACTION`` for JAX (smallest share).
- ``mps``: the GPU's MPS control daemon's pipe directory is mounted at
  ``/tmp/nvidia-mps`` (``CUDA_MPS_PIPE_DIRECTORY``), the container shares
  the host IPC namespace (MPS needs it), and
  ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=<MiB>M`` plus
  ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=<share × 100>`` cap memory and SMs in
  the driver. A client talks to one MPS server, so this applies to
  fractions on one device; a fraction above 1.0 (whole GPUs plus a part)
  falls back to ``framework`` limits. Mock nodes get the env only: no daemon,
  no mount.
- ``none``: the device and the env above, no limit.
"""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence

from corral.common.errors import BackendError, Conflict
from corral.common.gpu.topology import GpuTopology
from corral.common.gpu_slots import describe_gpus
from corral.common.node_resources import Allocation

from .config import AgentConfig, GpuConfig
from .kernel_spec import KernelSpec

log = logging.getLogger(__name__)

GPU_SITE_SUBDIR = "gpu"  # under the kernels mount: /opt/corral/gpu holds sitecustomize.py
MPS_PIPE_MOUNT = "/tmp/nvidia-mps"  # CUDA's default pipe directory, inside the container
NO_GPUS = "void"  # NVIDIA_VISIBLE_DEVICES value that exposes no GPU at all
MIB = 2**20


@dataclass(frozen=True)
class GpuAssignment:
    """One device a kernel holds."""

    index: int
    uuid: str
    model: str
    share: Decimal
    mem_limit: int  # bytes; 0 when unknown

    @property
    def whole(self) -> bool:
        return self.share >= 1


def assignments_from_allocation(allocation: Mapping[str, Any]) -> list[GpuAssignment]:
    """The kernel's devices, ascending index, from its allocation record.

    Uses the per-device detail (``gpus``: uuid, model, mem_limit) the manager
    recorded at reservation and `GpuEnforcer` re-derived from this node's
    topology; without it (an old record) the device is known by index only.
    """
    shares = Allocation.from_json(allocation).gpu_shares
    details = {int(d["index"]): d for d in allocation.get("gpus") or () if "index" in d}
    found = []
    for index in sorted(shares):
        detail = details.get(index, {})
        found.append(
            GpuAssignment(
                index=index,
                uuid=str(detail.get("uuid") or ""),
                model=str(detail.get("model") or ""),
                share=Decimal(shares[index]),
                mem_limit=int(detail.get("mem_limit") or 0),
            )
        )
    return found


@dataclass
class GpuContainerSettings:
    """The GPU part of a container's configuration."""

    env: dict[str, str] = field(default_factory=dict)
    device_requests: list[dict[str, Any]] = field(default_factory=list)
    binds: list[str] = field(default_factory=list)
    ipc_mode: str | None = None


def container_gpu_settings(
    allocation: Mapping[str, Any],
    gpu: GpuConfig,
    *,
    kernels_mount: str,
    mps_root: Path,
    session_pythonpath: str | None = None,
) -> GpuContainerSettings:
    """Env, device requests, binds and IPC mode for a kernel's GPUs (see module docstring)."""
    devices = assignments_from_allocation(allocation)
    if not devices:
        return GpuContainerSettings(env={"NVIDIA_VISIBLE_DEVICES": NO_GPUS})
    real = gpu.plugin == "cuda"
    ids = [d.uuid or str(d.index) for d in devices]
    # UUIDs name the same GPUs inside the container; host indexes would not
    # (the container numbers its GPUs from 0), so without UUIDs use ordinals.
    visible = ids if all(d.uuid for d in devices) else [str(i) for i in range(len(devices))]
    fractions = [d for d in devices if not d.whole]
    mode = gpu.sharing if fractions else "exclusive"
    env = {
        "CORRAL_GPU_DEVICES": ",".join(ids),
        "CORRAL_GPU_INDEXES": ",".join(str(d.index) for d in devices),
        "CORRAL_GPU_SHARES": ",".join(str(d.share) for d in devices),
        "CORRAL_GPU_MEM_LIMIT": ",".join(str(d.mem_limit) for d in devices),
        "CORRAL_GPU_SHARING": mode,
        "CUDA_VISIBLE_DEVICES": ",".join(visible),
        "NVIDIA_VISIBLE_DEVICES": ",".join(ids) if real else NO_GPUS,
    }
    settings = GpuContainerSettings(env=env)
    if real:
        settings.device_requests.append(
            {"Driver": "nvidia", "Count": 0, "DeviceIDs": ids, "Capabilities": [["gpu"]], "Options": {}}
        )
    if mode == "mps" and not uses_mps(devices):
        mode = "framework"  # several devices: one MPS server cannot serve them (see module docstring)
        env["CORRAL_GPU_SHARING"] = mode
    if mode == "framework":
        site_dir = f"{kernels_mount}/{GPU_SITE_SUBDIR}"
        env["PYTHONPATH"] = f"{site_dir}:{session_pythonpath}" if session_pythonpath else site_dir
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = str(min(d.share for d in fractions))
    elif mode == "mps":
        device = fractions[0]
        env.update(mps_client_env(device.share, device.mem_limit))
        if real:
            paths = mps_paths(mps_root, device.uuid)
            settings.binds.append(f"{paths.pipe_dir}:{MPS_PIPE_MOUNT}:rw")
            settings.ipc_mode = "host"
    return settings


def uses_mps(devices: Sequence[GpuAssignment]) -> bool:
    """MPS serves a kernel that holds exactly one device, fractionally."""
    return len(devices) == 1 and not devices[0].whole


# MPS ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MpsPaths:
    pipe_dir: Path
    log_dir: Path


def mps_paths(root: Path, uuid: str) -> MpsPaths:
    """Per-GPU pipe and log directories of that GPU's MPS control daemon."""
    base = Path(root) / _safe_name(uuid)
    return MpsPaths(pipe_dir=base / "pipe", log_dir=base / "log")


def mps_client_env(share: Decimal, mem_limit: int) -> dict[str, str]:
    """Env for an MPS client holding ``share`` of device 0 (its only visible device)."""
    env = {
        "CUDA_MPS_PIPE_DIRECTORY": MPS_PIPE_MOUNT,
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": str(max(1, int(Decimal(share) * 100))),
    }
    if mem_limit:
        env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = f"0={max(1, mem_limit // MIB)}M"
    return env


def mps_daemon_env(base: Mapping[str, str], uuid: str, paths: MpsPaths) -> dict[str, str]:
    """Env of the control daemon for one GPU: that GPU only, its own pipe and log directories."""
    env = dict(base)
    env.update(
        {
            "CUDA_VISIBLE_DEVICES": uuid,
            "CUDA_MPS_PIPE_DIRECTORY": str(paths.pipe_dir),
            "CUDA_MPS_LOG_DIRECTORY": str(paths.log_dir),
        }
    )
    return env


def mps_start_command(control: str) -> list[str]:
    return [control, "-d"]  # daemonizes; returns once the daemon is up


def mps_query_command(control: str) -> tuple[list[str], str]:
    """Command and stdin that succeed only while the daemon answers."""
    return [control], "get_server_list\n"


def mps_stop_command(control: str) -> tuple[list[str], str]:
    return [control], "quit\n"


CommandRunner = Callable[[Sequence[str], Mapping[str, str], str], Awaitable[tuple[int, str]]]


async def run_command(argv: Sequence[str], env: Mapping[str, str], stdin: str = "") -> tuple[int, str]:
    """Run a command to completion; (exit code, combined output)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=30)
    return process.returncode or 0, output.decode(errors="replace")


class MpsDaemons:
    """One MPS control daemon per GPU, started the first time a fraction lands on it.

    Daemons outlive the agent on purpose (kernels that use them keep running
    across an agent restart); a daemon already answering on its pipe
    directory is adopted, not started twice.
    """

    def __init__(self, root: Path, control: str = "nvidia-cuda-mps-control", run: CommandRunner | None = None) -> None:
        self.root = Path(root)
        self.control = control
        self._run = run or run_command
        self._ready: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure(self, uuid: str) -> MpsPaths:
        paths = mps_paths(self.root, uuid)
        if uuid in self._ready:
            return paths
        async with self._locks.setdefault(uuid, asyncio.Lock()):
            if uuid in self._ready:
                return paths
            env = mps_daemon_env(os.environ, uuid, paths)
            if not await self._answers(env):
                for directory in (paths.pipe_dir, paths.log_dir):
                    directory.mkdir(parents=True, exist_ok=True)
                    os.chmod(directory, 0o755)
                code, output = await self._call(mps_start_command(self.control), env, "")
                if code != 0 or not await self._answers(env):
                    raise BackendError(f"could not start the MPS control daemon for GPU {uuid}: {output.strip() or f'exit {code}'}")
                log.info("started MPS control daemon for GPU %s (pipes in %s)", uuid, paths.pipe_dir)
            self._ready.add(uuid)
        return paths

    async def stop(self, uuid: str) -> None:
        paths = mps_paths(self.root, uuid)
        argv, stdin = mps_stop_command(self.control)
        await self._call(argv, mps_daemon_env(os.environ, uuid, paths), stdin)
        self._ready.discard(uuid)

    async def _answers(self, env: Mapping[str, str]) -> bool:
        argv, stdin = mps_query_command(self.control)
        code, _ = await self._call(argv, env, stdin)
        return code == 0

    async def _call(self, argv: Sequence[str], env: Mapping[str, str], stdin: str) -> tuple[int, str]:
        try:
            return await self._run(argv, env, stdin)
        except FileNotFoundError:
            raise BackendError(f"gpu.sharing is 'mps' but {argv[0]!r} is not installed on this node") from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise BackendError(f"running {argv[0]!r} failed: {exc}") from None


# The agent side -------------------------------------------------------------------------
def mps_root(config: AgentConfig) -> Path:
    return Path(config.gpu.mps_dir) if config.gpu.mps_dir else config.data_dir / "mps"


class GpuEnforcer:
    """Checks a kernel's GPUs against this node and gets the node ready to give them."""

    def __init__(self, topology: GpuTopology, config: GpuConfig, mps: MpsDaemons | None = None) -> None:
        self.topology = topology
        self.config = config
        self.mps = mps

    def local_allocation(self, allocation: Mapping[str, Any]) -> dict[str, Any]:
        """The allocation with ``gpus`` re-derived from this node's topology.

        Refuses (Conflict) devices this node lacks, and devices whose UUID the
        manager recorded differently — the node's GPUs changed since it was
        scheduled, so the decision no longer means what it meant.
        """
        shares = Allocation.from_json(allocation).gpu_shares
        record = dict(allocation)
        if not shares:
            record.pop("gpus", None)
            return record
        missing = sorted(i for i in shares if not 0 <= i < self.topology.device_count)
        if missing:
            raise Conflict(f"GPU(s) {missing} are not on this node (it has {self.topology.device_count})")
        local = describe_gpus(self.topology, shares)
        recorded = {int(d["index"]): str(d.get("uuid", "")) for d in allocation.get("gpus") or () if "index" in d}
        changed = [d["index"] for d in local if recorded.get(d["index"], d["uuid"]) != d["uuid"]]
        if changed:
            raise Conflict(f"GPU(s) {changed} on this node are not the devices the scheduler chose (UUIDs differ)")
        record["gpus"] = local
        return record

    def needs_mps(self, allocation: Mapping[str, Any]) -> GpuAssignment | None:
        if self.config.sharing != "mps" or self.config.plugin != "cuda" or self.mps is None:
            return None
        devices = assignments_from_allocation(allocation)
        return devices[0] if uses_mps(devices) else None

    async def prepare(self, spec: KernelSpec) -> KernelSpec:
        allocation = self.local_allocation(spec.allocation)
        device = self.needs_mps(allocation)
        if device is not None:
            assert self.mps is not None
            await self.mps.ensure(device.uuid)
        return spec.model_copy(update={"allocation": allocation})


def _safe_name(uuid: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in uuid) or "gpu"

