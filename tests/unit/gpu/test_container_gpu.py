"""A kernel's GPU allocation in its Docker container configuration."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from corral.agent.backend.container_config import KERNELS_MOUNT, build_container_config
from corral.agent.config import AgentConfig
from corral.agent.kernel_spec import KernelSpec
from corral.common.gpu_slots import describe_gpus
from corral.common.node_resources import Allocation

from .topologies import load

D = Decimal
TOPOLOGY = load("workstation-4gpu-nvlink-pairs.toml")
GIB = 2**30


def agent_config(tmp_path: Path, **gpu: Any) -> AgentConfig:
    return AgentConfig(data_dir=tmp_path / "agent", gpu=gpu or {"plugin": "cuda"})


def spec_for(shares: dict[int, Decimal], env: dict[str, str] | None = None, **alloc: Any) -> KernelSpec:
    allocation = Allocation(
        cpu=D(2), mem=GIB, cpu_cores=(0, 1), gpu_shares=shares, gpu_whole=all(s == 1 for s in shares.values()), **alloc
    ).to_json()
    if shares:
        allocation["gpus"] = describe_gpus(TOPOLOGY, shares)
    return KernelSpec(kernel_id="k-1", session_id="s-1", session_name="t", image="img", allocation=allocation, env=env or {})


def build(spec: KernelSpec, config: AgentConfig, tmp_path: Path) -> dict[str, Any]:
    return build_container_config(spec, config, tmp_path / "k", Path("/pkg/kernels"), {})


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in container["Env"])


def uuids(*indexes: int) -> str:
    return ",".join(TOPOLOGY.devices[i].uuid for i in indexes)


def test_whole_gpus_become_a_device_request_by_uuid_on_a_cuda_node(tmp_path: Path) -> None:
    container = build(spec_for({2: D(1), 3: D(1)}), agent_config(tmp_path, plugin="cuda"), tmp_path)
    host = container["HostConfig"]
    assert host["DeviceRequests"] == [
        {"Driver": "nvidia", "Count": 0, "DeviceIDs": uuids(2, 3).split(","), "Capabilities": [["gpu"]], "Options": {}}
    ]
    env = env_of(container)
    assert env["CORRAL_GPU_DEVICES"] == uuids(2, 3)
    assert env["CORRAL_GPU_INDEXES"] == "2,3"
    assert env["CORRAL_GPU_SHARES"] == "1,1"
    assert env["CORRAL_GPU_MEM_LIMIT"] == f"{TOPOLOGY.devices[2].memory},{TOPOLOGY.devices[3].memory}"
    assert env["CORRAL_GPU_SHARING"] == "exclusive"
    assert env["NVIDIA_VISIBLE_DEVICES"] == env["CUDA_VISIBLE_DEVICES"] == uuids(2, 3)
    # Whole GPUs need no framework limits.
    assert "PYTHONPATH" not in env and "XLA_PYTHON_CLIENT_MEM_FRACTION" not in env
    assert "IpcMode" not in host


def test_mock_node_gets_the_same_env_but_no_device_request(tmp_path: Path) -> None:
    spec = spec_for({1: D("0.25")})
    real = build(spec, agent_config(tmp_path, plugin="cuda"), tmp_path)
    mock = build(spec, agent_config(tmp_path, plugin="mock", topology="x.toml"), tmp_path)
    assert "DeviceRequests" not in mock["HostConfig"]
    real_env, mock_env = env_of(real), env_of(mock)
    assert mock_env["NVIDIA_VISIBLE_DEVICES"] == "void"  # the host's real GPUs are not ours to give
    del real_env["NVIDIA_VISIBLE_DEVICES"], mock_env["NVIDIA_VISIBLE_DEVICES"]
    assert real_env == mock_env
    assert real["HostConfig"]["Binds"] == mock["HostConfig"]["Binds"]


def test_fraction_in_framework_mode_injects_sitecustomize_and_limits(tmp_path: Path) -> None:
    container = build(spec_for({1: D("0.25")}), agent_config(tmp_path, plugin="cuda"), tmp_path)
    env = env_of(container)
    assert env["CORRAL_GPU_SHARES"] == "0.25"
    assert env["CORRAL_GPU_MEM_LIMIT"] == str(int(TOPOLOGY.devices[1].memory * D("0.25")))
    assert env["CORRAL_GPU_SHARING"] == "framework"
    assert env["PYTHONPATH"] == f"{KERNELS_MOUNT}/gpu"
    assert env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.25"
    assert container["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == [TOPOLOGY.devices[1].uuid]
    # sitecustomize comes through the read-only kernels mount, where the package ships it.
    assert "/pkg/kernels:/opt/corral:ro" in container["HostConfig"]["Binds"]
    assert (Path(__file__).resolve().parents[3] / "kernels" / "gpu" / "sitecustomize.py").is_file()


def test_session_pythonpath_is_kept_after_the_sitecustomize_dir(tmp_path: Path) -> None:
    spec = spec_for({0: D("0.5")}, env={"PYTHONPATH": "/home/work/lib", "CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    env = env_of(build(spec, agent_config(tmp_path, plugin="cuda"), tmp_path))
    assert env["PYTHONPATH"] == f"{KERNELS_MOUNT}/gpu:/home/work/lib"
    assert env["CUDA_VISIBLE_DEVICES"] == TOPOLOGY.devices[0].uuid  # the session cannot widen its GPUs


def test_fraction_above_one_is_whole_gpus_plus_a_part(tmp_path: Path) -> None:
    env = env_of(build(spec_for({0: D(1), 1: D("0.5")}), agent_config(tmp_path, plugin="cuda"), tmp_path))
    assert env["CORRAL_GPU_SHARES"] == "1,0.5"
    assert env["CORRAL_GPU_SHARING"] == "framework"
    assert env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.5"


def test_sharing_none_gives_device_and_env_only(tmp_path: Path) -> None:
    container = build(spec_for({1: D("0.25")}), agent_config(tmp_path, plugin="cuda", sharing="none"), tmp_path)
    env = env_of(container)
    assert env["CORRAL_GPU_SHARING"] == "none" and env["CORRAL_GPU_SHARES"] == "0.25"
    assert "PYTHONPATH" not in env and "CUDA_MPS_PIPE_DIRECTORY" not in env
    assert container["HostConfig"]["DeviceRequests"]


def test_mps_mode_mounts_the_gpus_pipe_dir_and_sets_driver_limits(tmp_path: Path) -> None:
    config = agent_config(tmp_path, plugin="cuda", sharing="mps")
    container = build(spec_for({3: D("0.25")}), config, tmp_path)
    env = env_of(container)
    mem_mib = int(TOPOLOGY.devices[3].memory * D("0.25")) // 2**20
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == f"0={mem_mib}M"
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    assert env["CUDA_MPS_PIPE_DIRECTORY"] == "/tmp/nvidia-mps"
    assert env["CORRAL_GPU_SHARING"] == "mps"
    assert "PYTHONPATH" not in env
    pipe = tmp_path / "agent" / "mps" / TOPOLOGY.devices[3].uuid / "pipe"
    assert f"{pipe}:/tmp/nvidia-mps:rw" in container["HostConfig"]["Binds"]
    assert container["HostConfig"]["IpcMode"] == "host"


def test_mps_mode_on_a_mock_node_sets_env_but_mounts_nothing(tmp_path: Path) -> None:
    container = build(spec_for({3: D("0.25")}), agent_config(tmp_path, plugin="mock", topology="x", sharing="mps"), tmp_path)
    env = env_of(container)
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    assert len(container["HostConfig"]["Binds"]) == 2
    assert "IpcMode" not in container["HostConfig"]


def test_mps_mode_falls_back_to_framework_limits_across_devices(tmp_path: Path) -> None:
    container = build(spec_for({0: D(1), 1: D("0.5")}), agent_config(tmp_path, plugin="cuda", sharing="mps"), tmp_path)
    env = env_of(container)
    assert env["CORRAL_GPU_SHARING"] == "framework"
    assert env["PYTHONPATH"] == f"{KERNELS_MOUNT}/gpu"
    assert "CUDA_MPS_PIPE_DIRECTORY" not in env and "IpcMode" not in container["HostConfig"]


@pytest.mark.parametrize("plugin", ["none", "cuda", "mock"])
def test_kernels_without_gpus_see_none(tmp_path: Path, plugin: str) -> None:
    container = build(spec_for({}, env={"NVIDIA_VISIBLE_DEVICES": "all"}), agent_config(tmp_path, plugin=plugin, topology="x"), tmp_path)
    env = env_of(container)
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert not any(key.startswith("CORRAL_GPU") for key in env)
    assert "DeviceRequests" not in container["HostConfig"]


def test_mock_node_never_pins_its_imaginary_cores(tmp_path: Path) -> None:
    spec = spec_for({})
    pinned = AgentConfig(data_dir=tmp_path, resources={"cpu_pinning": True})
    mock = AgentConfig(data_dir=tmp_path, resources={"cpu_pinning": True}, gpu={"plugin": "mock", "topology": "x"})
    assert build(spec, pinned, tmp_path)["HostConfig"]["CpusetCpus"] == "0,1"
    assert "CpusetCpus" not in build(spec, mock, tmp_path)["HostConfig"]
    assert env_of(build(spec, mock, tmp_path))["CORRAL_CPU_CORES"] == "0,1"  # still recorded


def test_allocation_without_gpu_detail_falls_back_to_indexes(tmp_path: Path) -> None:
    allocation = Allocation(cpu=D(1), mem=GIB, gpu_shares={2: D(1)}, gpu_whole=True).to_json()
    spec = KernelSpec(kernel_id="k", session_id="s", image="img", allocation=allocation)
    container = build(spec, agent_config(tmp_path, plugin="cuda"), tmp_path)
    assert container["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == ["2"]
    env = env_of(container)
    assert env["CORRAL_GPU_INDEXES"] == "2" and env["CORRAL_GPU_MEM_LIMIT"] == "0"
    assert env["CUDA_VISIBLE_DEVICES"] == "0"  # the container numbers its one GPU 0
