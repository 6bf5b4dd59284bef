"""NVML discovery: the pure mappings, and the plugin against a fake NVML."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from corral.agent.gpu import load_gpu_plugin
from corral.agent.gpu.cuda import CudaGpuPlugin
from corral.agent.gpu.nvml_mapping import (
    common_ancestor_label,
    cpus_from_affinity_words,
    link_label_matrix,
    normalize_pci_bus_id,
    nvlink_count_matrix,
)
from corral.common.errors import ConfigError
from corral.common.gpu.links import nvlink_count
from corral.common.gpu.topology import GpuTopology

from .topologies import load

LEVEL_OF_LABEL = {"PIX": 10, "PXB": 20, "PHB": 30, "NODE": 40, "SYS": 50}


def test_affinity_words_to_cores() -> None:
    assert cpus_from_affinity_words([0b1011]) == (0, 1, 3)
    assert cpus_from_affinity_words([0, 1 << 63 | 1]) == (64, 127)
    assert cpus_from_affinity_words([]) == ()


def test_common_ancestor_levels_to_labels() -> None:
    assert [common_ancestor_label(level) for level in (0, 10, 20, 30, 40, 50)] == ["PIX", "PIX", "PXB", "PHB", "NODE", "SYS"]
    assert common_ancestor_label(99) == "SYS"


def test_pci_bus_id_normalized_for_sysfs_and_matching() -> None:
    assert normalize_pci_bus_id(b"00000000:07:00.0") == "0000:07:00.0"
    assert normalize_pci_bus_id("00000001:C7:00.0") == "0001:c7:00.0"


def test_nvlink_matrix_direct_and_nvswitch() -> None:
    direct = {(0, 1): 2, (1, 0): 2, (1, 2): 1}
    matrix = nvlink_count_matrix(4, direct, [0, 0, 0, 0])
    assert matrix[0][1] == matrix[1][0] == 2 and matrix[1][2] == matrix[2][1] == 1 and matrix[0][3] == 0
    switched = nvlink_count_matrix(3, {}, [12, 12, 0])
    assert switched[0][1] == 12 and switched[0][2] == 0 and switched[1][2] == 0


def test_label_matrix_prefers_nvlink() -> None:
    pcie = [["X", "PIX", "SYS"], ["PIX", "X", "SYS"], ["SYS", "SYS", "X"]]
    nvlinks = [[0, 0, 4], [0, 0, 0], [4, 0, 0]]
    assert link_label_matrix(pcie, nvlinks) == (("X", "PIX", "NV4"), ("PIX", "X", "SYS"), ("NV4", "SYS", "X"))


# A fake NVML module built from a topology ---------------------------------------
class FakeNVMLError(Exception):
    pass


def fake_nvml(topology: GpuTopology, *, nvswitch: bool = False, mig_on: tuple[int, ...] = (), fail_init: bool = False):
    """Answers NVML calls the way a node with this topology would."""
    n = topology.device_count
    bus = [f"00000000:{0x10 + i:02X}:00.0" for i in range(n)]
    switch_bus = "00000000:C4:00.0"
    links: dict[int, list[str]] = {}
    for i in range(n):
        remotes: list[str] = []
        for j in range(n):
            count = nvlink_count(topology.link(i, j)) if i != j else 0
            if nvswitch:
                continue
            remotes += [bus[j]] * count
        if nvswitch:
            remotes = [switch_bus] * nvlink_count(topology.link(i, (i + 1) % n))
        links[i] = remotes

    def check_mig(handle):
        if isinstance(handle, tuple):
            raise FakeNVMLError("MIG handle")
        return handle

    def mig_handle(handle, slot):
        if slot >= 2:
            raise FakeNVMLError("Not Found")
        return ("mig", handle, slot)

    def uuid(handle):
        return f"MIG-{handle[1]}-{handle[2]}".encode() if isinstance(handle, tuple) else topology.devices[handle].uuid.encode()

    def name(handle):
        return "A100 MIG 3g.40gb" if isinstance(handle, tuple) else topology.devices[handle].model

    def memory(handle):
        return SimpleNamespace(total=40 * 2**30 if isinstance(handle, tuple) else topology.devices[handle].memory)

    def affinity(handle, words):
        mask = [0] * words
        for core in topology.devices[handle].cpu_affinity:
            mask[core // 64] |= 1 << (core % 64)
        return mask

    def nvlink_state(handle, link):
        if link >= len(links[handle]):
            raise FakeNVMLError("Not Supported")
        return 1

    def remote_type(handle, link):
        return 2 if links[handle][link] == switch_bus else 0

    def init():
        if fail_init:
            raise FakeNVMLError("Driver Not Loaded")

    def mig_mode(handle):
        if handle in mig_on:
            return (1, 1)
        raise FakeNVMLError("Not Supported")

    return SimpleNamespace(
        NVMLError=FakeNVMLError,
        NVML_NVLINK_MAX_LINKS=18,
        NVML_FEATURE_ENABLED=1,
        NVML_DEVICE_MIG_ENABLE=1,
        nvmlInit=init,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: n,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetPciInfo=lambda h: SimpleNamespace(busId=bus[h].encode()),
        nvmlDeviceGetUUID=uuid,
        nvmlDeviceGetName=name,
        nvmlDeviceGetMemoryInfo=memory,
        nvmlDeviceGetCpuAffinity=affinity,
        nvmlDeviceGetNumaNodeId=lambda h: topology.devices[check_mig(h)].numa_node if topology.devices[h].numa_node is not None else -1,
        nvmlDeviceGetTopologyCommonAncestor=lambda a, b: LEVEL_OF_LABEL.get(topology.link(a, b), 10),
        nvmlDeviceGetNvLinkState=nvlink_state,
        nvmlDeviceGetNvLinkRemotePciInfo=lambda h, link: SimpleNamespace(busId=links[h][link]),
        nvmlDeviceGetNvLinkRemoteDeviceType=remote_type,
        nvmlDeviceGetMigMode=mig_mode,
        nvmlDeviceGetMaxMigDeviceCount=lambda h: 7,
        nvmlDeviceGetMigDeviceHandleByIndex=mig_handle,
        nvmlDeviceGetGpuInstanceId=lambda h: 1 + h[2],
        nvmlDeviceGetComputeInstanceId=lambda h: 0,
    )


def without_bus_ids_and_mig(topology: GpuTopology) -> GpuTopology:
    from dataclasses import replace

    return GpuTopology(tuple(replace(d, pci_bus_id="", mig=()) for d in topology.devices), topology.links)


@pytest.mark.parametrize(
    "name, nvswitch",
    [("dgx-a100.toml", True), ("dgx1-v100.toml", False), ("pcie-8gpu-dual-socket.toml", False), ("workstation-4gpu-nvlink-pairs.toml", False)],
)
async def test_nvml_discovery_matches_the_mock_file(name: str, nvswitch: bool) -> None:
    expected = load(name)
    discovered = await CudaGpuPlugin(nvml=fake_nvml(expected, nvswitch=nvswitch), sysfs_pci=None).discover()  # type: ignore[arg-type]
    assert without_bus_ids_and_mig(discovered) == expected
    assert discovered.devices[1].pci_bus_id == "0000:11:00.0"


async def test_mig_instances_are_listed() -> None:
    topology = load("dgx-a100.toml")
    discovered = await load_gpu_plugin("cuda", nvml=fake_nvml(topology, nvswitch=True, mig_on=(0,))).discover()
    assert [m.uuid for m in discovered.devices[0].mig] == ["MIG-0-0", "MIG-0-1"]
    assert discovered.devices[0].mig[1].gpu_instance_id == 2
    assert discovered.devices[1].mig == ()


async def test_no_driver_means_no_gpus_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="corral.agent.gpu")
    plugin = load_gpu_plugin("cuda", nvml=fake_nvml(load("mock-2gpu.toml"), fail_init=True))
    assert await plugin.discover() == GpuTopology()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "Driver Not Loaded" in messages[0]


async def test_numa_node_falls_back_to_sysfs(tmp_path) -> None:
    topology = load("mock-2gpu.toml")
    nvml = fake_nvml(topology)
    del nvml.nvmlDeviceGetNumaNodeId
    (tmp_path / "0000:10:00.0").mkdir()
    (tmp_path / "0000:10:00.0" / "numa_node").write_text("1\n")
    (tmp_path / "0000:11:00.0").mkdir()
    (tmp_path / "0000:11:00.0" / "numa_node").write_text("-1\n")
    discovered = await CudaGpuPlugin(nvml=nvml, sysfs_pci=tmp_path).discover()
    assert [d.numa_node for d in discovered.devices] == [1, None]


async def test_plugin_factory() -> None:
    assert await load_gpu_plugin("none").discover() == GpuTopology()
    mock = load_gpu_plugin("mock", topology="configs/gpus/mock-2gpu.toml", uuid_seed="agent-1")
    assert mock.name == "mock"
    with pytest.raises(ConfigError, match="topology"):
        load_gpu_plugin("mock")
    with pytest.raises(ConfigError, match="unknown GPU plugin"):
        load_gpu_plugin("rocm")
    with pytest.raises(ConfigError, match="takes no option"):
        load_gpu_plugin("none", topology="x")


async def test_mock_plugin_reads_the_file(tmp_path) -> None:
    from .topologies import TOPOLOGY_DIR

    plugin = load_gpu_plugin("mock", topology=str(TOPOLOGY_DIR / "dgx-a100.toml"))
    assert await plugin.discover() == load("dgx-a100.toml")
    with pytest.raises(ConfigError):
        await load_gpu_plugin("mock", topology=str(tmp_path / "missing.toml")).discover()
