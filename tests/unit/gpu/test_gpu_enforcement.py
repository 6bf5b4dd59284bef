"""MPS command building and daemon start-up (with a stand-in runner), and the agent's GPU re-check."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping, Sequence

import pytest

from corral.agent.config import GpuConfig
from corral.agent.gpu_enforcement import (
    GpuEnforcer,
    MpsDaemons,
    assignments_from_allocation,
    mps_client_env,
    mps_daemon_env,
    mps_paths,
    mps_query_command,
    mps_start_command,
    mps_stop_command,
)
from corral.agent.kernel_spec import KernelSpec
from corral.common.errors import BackendError, Conflict
from corral.common.gpu_slots import describe_gpus
from corral.common.node_resources import Allocation

from .topologies import load

D = Decimal
TOPOLOGY = load("mock-2gpu.toml")
UUID = "GPU-11111111-2222-3333-4444-555555555555"


# Pure command building ---------------------------------------------------------------
def test_mps_paths_are_per_gpu() -> None:
    paths = mps_paths(Path("/var/lib/corral/agent/mps"), UUID)
    assert paths.pipe_dir == Path(f"/var/lib/corral/agent/mps/{UUID}/pipe")
    assert paths.log_dir == Path(f"/var/lib/corral/agent/mps/{UUID}/log")
    assert mps_paths(Path("/r"), "MIG-a/b").pipe_dir == Path("/r/MIG-a_b/pipe")  # never escapes the root


def test_mps_daemon_env_pins_one_gpu_and_its_directories() -> None:
    paths = mps_paths(Path("/r"), UUID)
    env = mps_daemon_env({"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "0,1"}, UUID, paths)
    assert env == {
        "PATH": "/usr/bin",
        "CUDA_VISIBLE_DEVICES": UUID,
        "CUDA_MPS_PIPE_DIRECTORY": f"/r/{UUID}/pipe",
        "CUDA_MPS_LOG_DIRECTORY": f"/r/{UUID}/log",
    }


def test_mps_commands() -> None:
    assert mps_start_command("nvidia-cuda-mps-control") == ["nvidia-cuda-mps-control", "-d"]
    assert mps_query_command("/opt/bin/mps") == (["/opt/bin/mps"], "get_server_list\n")
    assert mps_stop_command("mps") == (["mps"], "quit\n")


@pytest.mark.parametrize(
    ("share", "mem", "threads", "limit"),
    [("0.25", 16 * 2**30, "25", "0=4096M"), ("0.01", 2**30, "1", "0=10M"), ("0.5", 0, "50", None)],
)
def test_mps_client_env(share: str, mem: int, threads: str, limit: str | None) -> None:
    env = mps_client_env(D(share), int(D(share) * mem))
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == threads
    assert env.get("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT") == limit
    assert env["CUDA_MPS_PIPE_DIRECTORY"] == "/tmp/nvidia-mps"


# The daemon manager, with a stand-in for the binary ---------------------------------------
class FakeMpsControl:
    def __init__(self, start_code: int = 0, running: bool = False) -> None:
        self.calls: list[tuple[list[str], str, str]] = []
        self.start_code = start_code
        self.running: set[str] = {UUID} if running else set()

    async def __call__(self, argv: Sequence[str], env: Mapping[str, str], stdin: str) -> tuple[int, str]:
        pipe = env["CUDA_MPS_PIPE_DIRECTORY"]
        self.calls.append((list(argv), stdin, pipe))
        gpu = env["CUDA_VISIBLE_DEVICES"]
        if argv[1:] == ["-d"]:
            if self.start_code == 0:
                self.running.add(gpu)
            return self.start_code, "" if self.start_code == 0 else "An instance of this daemon is already running"
        return (0, "") if gpu in self.running else (1, "Cannot find MPS control daemon process")


async def test_daemon_is_started_once_per_gpu_lazily(tmp_path: Path) -> None:
    control = FakeMpsControl()
    daemons = MpsDaemons(tmp_path / "mps", "mps-control", run=control)
    assert control.calls == []  # nothing before a fraction lands
    paths = await daemons.ensure(UUID)
    await daemons.ensure(UUID)
    starts = [c for c in control.calls if c[0] == ["mps-control", "-d"]]
    assert len(starts) == 1 and starts[0][2] == str(paths.pipe_dir)
    assert paths.pipe_dir.is_dir() and paths.log_dir.is_dir()


async def test_a_daemon_already_running_is_adopted(tmp_path: Path) -> None:
    control = FakeMpsControl(running=True)
    await MpsDaemons(tmp_path, "mps-control", run=control).ensure(UUID)
    assert [c[0] for c in control.calls] == [["mps-control"]]


async def test_daemon_failure_is_a_backend_error(tmp_path: Path) -> None:
    daemons = MpsDaemons(tmp_path, "mps-control", run=FakeMpsControl(start_code=1))
    with pytest.raises(BackendError, match="MPS control daemon"):
        await daemons.ensure(UUID)


async def test_missing_binary_is_a_backend_error(tmp_path: Path) -> None:
    daemons = MpsDaemons(tmp_path, str(tmp_path / "no-such-mps-control"))
    with pytest.raises(BackendError, match="not installed"):
        await daemons.ensure(UUID)


# The agent's re-check before a container starts ---------------------------------------------
def spec_with(shares: dict[int, Decimal], gpus: list[dict[str, Any]] | None = None) -> KernelSpec:
    allocation = Allocation(cpu=D(1), mem=2**20, gpu_shares=shares, gpu_whole=False).to_json()
    if gpus is not None:
        allocation["gpus"] = gpus
    return KernelSpec(kernel_id="k", session_id="s", image="img", allocation=allocation)


def test_local_allocation_fills_gpu_detail_from_this_nodes_topology() -> None:
    enforcer = GpuEnforcer(TOPOLOGY, GpuConfig(plugin="mock", topology="x"))
    record = enforcer.local_allocation(spec_with({1: D("0.5")}).allocation)
    assert record["gpus"] == describe_gpus(TOPOLOGY, {1: D("0.5")})
    devices = assignments_from_allocation(record)
    assert [(d.index, d.uuid, d.share, d.mem_limit) for d in devices] == [
        (1, TOPOLOGY.devices[1].uuid, D("0.5"), 8 * 2**30)
    ]


def test_devices_that_changed_since_scheduling_are_refused() -> None:
    enforcer = GpuEnforcer(TOPOLOGY, GpuConfig(plugin="mock", topology="x"))
    stale = [{"index": 0, "uuid": "GPU-from-another-life", "share": "1"}]
    with pytest.raises(Conflict, match="UUIDs differ"):
        enforcer.local_allocation(spec_with({0: D(1)}, stale).allocation)
    with pytest.raises(Conflict, match="not on this node"):
        enforcer.local_allocation(spec_with({7: D(1)}).allocation)


async def test_enforcer_starts_mps_only_for_a_cuda_fraction(tmp_path: Path) -> None:
    control = FakeMpsControl()
    uuid = TOPOLOGY.devices[1].uuid
    control.running.discard(uuid)
    daemons = MpsDaemons(tmp_path, "mps-control", run=control)
    enforcer = GpuEnforcer(TOPOLOGY, GpuConfig(plugin="cuda", sharing="mps"), daemons)
    await enforcer.prepare(spec_with({0: D(1)}))  # whole GPU: no MPS
    assert control.calls == []
    prepared = await enforcer.prepare(spec_with({1: D("0.3")}))
    assert uuid in control.running
    assert prepared.allocation["gpus"][0]["uuid"] == uuid


async def test_mock_node_never_runs_mps(tmp_path: Path) -> None:
    control = FakeMpsControl()
    enforcer = GpuEnforcer(TOPOLOGY, GpuConfig(plugin="mock", topology="x", sharing="mps"), MpsDaemons(tmp_path, run=control))
    prepared = await enforcer.prepare(spec_with({1: D("0.3")}))
    assert control.calls == []
    assert prepared.allocation["gpus"][0]["index"] == 1


class _Backend:
    has_runner = False

    def __init__(self) -> None:
        self.started: list[KernelSpec] = []

    async def start_kernel(self, spec: KernelSpec, kernel_dir: Path, progress: Any = None) -> str:
        self.started.append(spec)
        return "cid"

    async def stop_kernel(self, container_id: str, grace_s: int = 3) -> tuple[int | None, str]:
        return 0, ""


class _Link:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def send_event(self, kind: str, kernel_id: str, **fields: Any) -> None:
        self.events.append((kind, fields))


async def _start_through_kernel_manager(tmp_path: Path, spec: KernelSpec) -> tuple[_Backend, _Link]:
    import asyncio

    from corral.agent.kernels import KernelManager
    from corral.common.node_resources import NodeCapacity

    backend, link = _Backend(), _Link()
    capacity = NodeCapacity(cpu_cores=(0, 1), mem=2**30, gpu_topology=TOPOLOGY.to_json())
    enforcer = GpuEnforcer(TOPOLOGY, GpuConfig(plugin="mock", topology="x"))
    manager = KernelManager(tmp_path, backend, capacity, link, enforcer)  # type: ignore[arg-type]
    await manager.create(spec)
    while manager._starting:
        await asyncio.sleep(0.01)
    return backend, link


async def test_kernel_manager_runs_the_enforcer_before_starting(tmp_path: Path) -> None:
    backend, link = await _start_through_kernel_manager(tmp_path, spec_with({1: D("0.5")}))
    assert backend.started[0].allocation["gpus"][0]["uuid"] == TOPOLOGY.devices[1].uuid
    assert link.events[0][0] == "kernel.running"


async def test_kernel_manager_refuses_gpus_that_are_not_the_scheduled_ones(tmp_path: Path) -> None:
    wrong = [{"index": 1, "uuid": UUID}]
    backend, link = await _start_through_kernel_manager(tmp_path, spec_with({1: D("0.5")}, wrong))
    assert backend.started == []
    kind, fields = link.events[0]
    assert kind == "kernel.failed" and "UUIDs differ" in fields["reason"]
