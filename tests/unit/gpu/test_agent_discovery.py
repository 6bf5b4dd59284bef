"""The agent's GPU discovery: mock UUIDs per agent, the cores a mock node advertises."""
from __future__ import annotations

from pathlib import Path

from corral.agent.config import AgentConfig
from corral.agent.server import AgentServer

from .topologies import TOPOLOGY_DIR


def server(tmp_path: Path, agent_id: str, **gpu: str) -> AgentServer:
    return AgentServer(AgentConfig(id=agent_id, data_dir=tmp_path / agent_id, backend="dummy", gpu=gpu))


async def test_mock_agents_sharing_a_file_get_different_uuids(tmp_path: Path) -> None:
    file = str(TOPOLOGY_DIR / "dgx-a100.toml")
    first, cores = await server(tmp_path, "node-1", plugin="mock", topology=file)._discover_gpus()
    second, _ = await server(tmp_path, "node-2", plugin="mock", topology=file)._discover_gpus()
    again, _ = await server(tmp_path, "node-1", plugin="mock", topology=file)._discover_gpus()
    assert first.device_count == second.device_count == 8
    assert not {d.uuid for d in first.devices} & {d.uuid for d in second.devices}
    assert [d.uuid for d in first.devices] == [d.uuid for d in again.devices]  # stable across restarts
    # A mock node advertises the topology's cores with their NUMA nodes.
    assert cores == first.numa_of_core() and tuple(sorted(cores)) == first.cpu_cores()


async def test_no_plugin_no_gpus(tmp_path: Path) -> None:
    topology, cores = await server(tmp_path, "plain", plugin="none")._discover_gpus()
    assert topology.device_count == 0 and cores is None


async def test_cuda_plugin_without_nvml_is_a_node_without_gpus(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", None)  # as if nvidia-ml-py were missing
    topology, cores = await server(tmp_path, "cuda", plugin="cuda")._discover_gpus()
    assert topology.device_count == 0 and cores is None
