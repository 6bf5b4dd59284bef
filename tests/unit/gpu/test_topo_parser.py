from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.common.errors import ConfigError
from corral.common.gpu.cpu_list import format_cpu_list, parse_cpu_list
from corral.common.gpu.links import link_bandwidth_gbps, link_rank, normalize_link_label
from corral.common.gpu.topo_parser import (
    load_topology_file,
    parse_topo_matrix,
    synthetic_gpu_uuid,
    topology_from_mock_document,
    topology_from_topo_text,
)
from corral.common.gpu.topology import GpuDevice, GpuTopology, MigDevice

from .topologies import TOPOLOGY_FILES, load

TABBED = (
    "\tGPU0\tGPU1\tNIC0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\n"
    "GPU0\t X \tNV18\tPXB\t0-55,112-167\t0\t\tN/A\n"
    "GPU1\tNV18\t X \tNODE\t56-111,168-223\t1\t\tN/A\n"
    "NIC0\tPXB\tNODE\t X \n"
    "\n"
    "Legend:\n\n  X    = Self\n  NV#  = Connection traversing a bonded set of # NVLinks\n"
    "\nNIC Legend:\n\n  NIC0: mlx5_0\n"
)


def test_every_shipped_file_loads_and_survives_the_wire(shipped_topology: GpuTopology) -> None:
    wire = json.loads(json.dumps(shipped_topology.to_json()))
    assert GpuTopology.from_json(wire) == shipped_topology
    assert shipped_topology.device_count >= 2
    assert all(d.cpu_affinity for d in shipped_topology.devices)
    assert len({d.uuid for d in shipped_topology.devices}) == shipped_topology.device_count


def test_required_topologies_are_shipped() -> None:
    names = {path.stem for path in TOPOLOGY_FILES}
    assert {"dgx-a100", "dgx1-v100", "pcie-8gpu-dual-socket", "workstation-4gpu-nvlink-pairs", "mock-2gpu"} <= names
    assert any(load(path.name).device_count == 16 for path in TOPOLOGY_FILES)


def test_dgx_a100_nvswitch_numa_and_affinity_nic_rows_ignored() -> None:
    topology = load("dgx-a100.toml")
    assert topology.device_count == 8
    assert all(topology.link(i, j) == "NV12" for i in range(8) for j in range(8) if i != j)
    assert [d.numa_node for d in topology.devices] == [3, 3, 1, 1, 7, 7, 5, 5]
    assert topology.devices[0].cpu_affinity == tuple(range(48, 64)) + tuple(range(176, 192))
    assert topology.devices[0].model == "NVIDIA A100-SXM4-80GB"
    assert topology.devices[0].memory == 80 * 2**30
    assert topology.numa_nodes() == (1, 3, 5, 7)


def test_dgx1_without_numa_column_derives_numa_from_cpu_affinity() -> None:
    topology = load("dgx1-v100.toml")
    assert [d.numa_node for d in topology.devices] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert topology.link(0, 3) == "NV2" and topology.link(0, 1) == "NV1" and topology.link(0, 5) == "SYS"
    assert topology.link(4, 0) == "NV2"


def test_tab_separated_output_with_gpu_numa_id_column() -> None:
    rows = parse_topo_matrix(TABBED)
    assert [r.links for r in rows] == [("X", "NV18"), ("NV18", "X")]
    assert rows[1].numa_affinity == 1
    assert rows[1].cpu_affinity[0] == 56 and len(rows[1].cpu_affinity) == 112


def test_single_gpu_and_not_available_columns() -> None:
    text = "        GPU0    CPU Affinity    NUMA Affinity\nGPU0     X      N/A             N/A\n"
    topology = topology_from_topo_text(text)
    assert topology.device_count == 1
    assert topology.devices[0].cpu_affinity == () and topology.devices[0].numa_node is None
    assert topology.numa_nodes() == ()


def test_old_soc_label_reads_as_sys() -> None:
    text = "        GPU0    GPU1    CPU Affinity\nGPU0     X      SOC     0-3\nGPU1    SOC      X      4-7\n"
    assert topology_from_topo_text(text).link(0, 1) == "SYS"


@pytest.mark.parametrize(
    "text, message",
    [
        ("GPU0 X NV1\n", "header"),
        ("  GPU0 GPU1 CPU Affinity\nGPU0 X NV1 0-3\nGPU1 NV1\n", "link cells"),
        ("  GPU0 GPU1 CPU Affinity\nGPU0 X FOO 0-3\nGPU1 FOO X 0-3\n", "unknown GPU link label"),
        ("  GPU0 GPU1 CPU Affinity\nGPU0 X NV1 0-3\nGPU1 NV2 X 0-3\n", "not symmetric"),
        ("  GPU0 GPU1 CPU Affinity\nGPU0 X NV1 0-3\n", "do not match"),
        ("  GPU0 GPU1 CPU Affinity\nGPU0 X NV1 0-x\nGPU1 NV1 X 0-3\n", "CPU list"),
    ],
)
def test_malformed_output_is_a_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        topology_from_topo_text(text)


def test_mock_document_overrides_and_stable_synthetic_uuids() -> None:
    doc = {
        "name": "two",
        "topo": "  GPU0 GPU1 CPU Affinity NUMA Affinity\nGPU0 X PIX 0-3 0\nGPU1 PIX X 0-3 0\n",
        "defaults": {"model": "Fake", "memory": "8GiB"},
        "device": [{"index": 1, "uuid": "GPU-given", "memory": 1024, "pci_bus_id": "0000:01:00.0"}],
    }
    topology = topology_from_mock_document(doc, uuid_seed="two")
    first, second = topology.devices
    assert (first.model, first.memory) == ("Fake", 8 * 2**30)
    assert (second.uuid, second.memory, second.pci_bus_id) == ("GPU-given", 1024, "0000:01:00.0")
    assert first.uuid == synthetic_gpu_uuid("two", 0) == topology_from_mock_document(doc, uuid_seed="two").devices[0].uuid
    assert first.uuid != topology_from_mock_document(doc, uuid_seed="other").devices[0].uuid
    assert first.uuid.startswith("GPU-") and len(first.uuid) == 40


@pytest.mark.parametrize(
    "change, message",
    [
        ({"topo": 3}, "topo"),
        ({"bogus": 1}, "unknown keys"),
        ({"device": [{"uuid": "x"}]}, "index"),
        ({"device": [{"index": 5, "model": "x"}]}, "does not have"),
        ({"defaults": {"memory": "lots"}}, "size"),
    ],
)
def test_bad_mock_documents(change: dict, message: str) -> None:
    doc = {"topo": "  GPU0 GPU1 CPU Affinity\nGPU0 X PIX 0-3\nGPU1 PIX X 0-3\n", **change}
    with pytest.raises(ConfigError, match=message):
        topology_from_mock_document(doc)


def test_unreadable_file_names_the_file(tmp_path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="nope.toml"):
        load_topology_file(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("topo = ")
    with pytest.raises(ConfigError, match="broken.toml"):
        load_topology_file(broken)


def test_topology_json_keeps_mig_and_rejects_bad_matrices() -> None:
    mig = MigDevice(index=0, uuid="MIG-1", name="1g.10gb", memory=10, gpu_instance_id=1, compute_instance_id=0)
    device = GpuDevice(0, "GPU-a", "A100", 80, 0, (0, 1, 2), "0000:07:00.0", (mig,))
    topology = GpuTopology((device,), (("X",),))
    assert GpuTopology.from_json(topology.to_json()) == topology
    assert topology.to_json()["devices"][0]["cpu_affinity"] == "0-2"
    assert GpuTopology.from_json(None) == GpuTopology()
    with pytest.raises(ConfigError):
        GpuTopology((device,), (("X", "NV1"),))
    with pytest.raises(ConfigError):
        GpuTopology((device,), (("NV1",),))


def test_link_rank_order_and_bandwidth() -> None:
    order = ["NV12", "NV2", "NV1", "PIX", "PXB", "PHB", "NODE", "SYS"]
    ranks = [link_rank(label) for label in order]
    assert ranks == sorted(ranks, reverse=True) and len(set(ranks)) == len(ranks)
    bandwidths = [link_bandwidth_gbps(label) for label in order]
    assert bandwidths == sorted(bandwidths, reverse=True)
    assert link_bandwidth_gbps("NV12") == 300 and link_bandwidth_gbps("NV1") == 25
    assert normalize_link_label(" nv04 ") == "NV4"
    with pytest.raises(ConfigError):
        normalize_link_label("NV0")


@settings(max_examples=50, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=300), max_size=40))
def test_cpu_list_round_trip(cores: set[int]) -> None:
    assert parse_cpu_list(format_cpu_list(cores)) == tuple(sorted(cores))


def test_cpu_list_examples() -> None:
    assert parse_cpu_list("0-2,8,10-11") == (0, 1, 2, 8, 10, 11)
    assert format_cpu_list([3, 1, 2, 7]) == "1-3,7"
    assert parse_cpu_list("N/A") == ()
    with pytest.raises(ConfigError):
        parse_cpu_list("3-1")
