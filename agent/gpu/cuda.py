"""`cuda` GPU plugin: discovery through NVML (`nvidia-ml-py`, imported as `pynvml`).

Devices, UUID, model, memory, NUMA node, CPU affinity, PCIe common ancestor
and NVLink links per pair, MIG instances when MIG mode is on. No library, no
driver or no GPU: an empty topology and one log line saying why.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from corral.common.gpu.topology import GpuDevice, GpuTopology, MigDevice

from .nvml_mapping import (
    common_ancestor_label,
    cpus_from_affinity_words,
    link_label_matrix,
    normalize_pci_bus_id,
    nvlink_count_matrix,
)

log = logging.getLogger(__name__)

SYSFS_PCI_DEVICES = Path("/sys/bus/pci/devices")
_NVLINK_SWITCH = 2  # NVML_NVLINK_DEVICE_TYPE_SWITCH
_NVLINK_GPU = 0  # NVML_NVLINK_DEVICE_TYPE_GPU


class CudaGpuPlugin:
    name = "cuda"

    def __init__(self, nvml: ModuleType | Any | None = None, sysfs_pci: Path = SYSFS_PCI_DEVICES) -> None:
        self._nvml = nvml
        self._sysfs_pci = sysfs_pci

    async def discover(self) -> GpuTopology:
        return await asyncio.to_thread(self.discover_sync)

    def discover_sync(self) -> GpuTopology:
        nvml = self._nvml
        if nvml is None:
            try:
                import pynvml as nvml  # type: ignore[no-redef]
            except ImportError:
                log.warning("no GPUs: the NVML binding (nvidia-ml-py) is not installed")
                return GpuTopology()
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            log.warning("no GPUs: NVML could not start (%s); is the NVIDIA driver loaded?", exc)
            return GpuTopology()
        try:
            count = nvml.nvmlDeviceGetCount()
            if count == 0:
                log.warning("no GPUs: NVML sees no devices")
                return GpuTopology()
            topology = _Discovery(nvml, count, self._sysfs_pci).run()
            log.info("NVML: %d GPU(s): %s", count, ", ".join(sorted({d.model for d in topology.devices})))
            return topology
        except nvml.NVMLError as exc:
            log.warning("no GPUs: NVML query failed (%s)", exc)
            return GpuTopology()
        finally:
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError:
                pass


class _Discovery:
    def __init__(self, nvml: Any, count: int, sysfs_pci: Path) -> None:
        self.nvml = nvml
        self.count = count
        self.sysfs_pci = sysfs_pci
        self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        self.bus_ids = [normalize_pci_bus_id(nvml.nvmlDeviceGetPciInfo(h).busId) for h in self.handles]

    def run(self) -> GpuTopology:
        devices = tuple(self._device(i) for i in range(self.count))
        pcie = [
            ["X" if i == j else common_ancestor_label(self.nvml.nvmlDeviceGetTopologyCommonAncestor(self.handles[i], self.handles[j]))
             for j in range(self.count)]
            for i in range(self.count)
        ]
        direct, switch = self._nvlinks()
        links = link_label_matrix(pcie, nvlink_count_matrix(self.count, direct, switch))
        return GpuTopology(devices=devices, links=links)

    def _device(self, index: int) -> GpuDevice:
        nvml, handle = self.nvml, self.handles[index]
        return GpuDevice(
            index=index,
            uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
            model=_text(nvml.nvmlDeviceGetName(handle)),
            memory=int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
            numa_node=self._numa_node(index),
            cpu_affinity=self._cpu_affinity(handle),
            pci_bus_id=self.bus_ids[index],
            mig=self._mig_devices(handle),
        )

    def _cpu_affinity(self, handle: Any) -> tuple[int, ...]:
        # Room for at least 1024 CPUs: a container's cpu_count may be smaller
        # than the host's numbering, and NVML leaves unused words zero.
        words = -(-max(os.cpu_count() or 1, 1024) // 64)
        try:
            return cpus_from_affinity_words(list(self.nvml.nvmlDeviceGetCpuAffinity(handle, words)))
        except self.nvml.NVMLError:
            return ()

    def _numa_node(self, index: int) -> int | None:
        getter = getattr(self.nvml, "nvmlDeviceGetNumaNodeId", None)
        if getter is not None:
            try:
                node = int(getter(self.handles[index]))
                if node >= 0:
                    return node
            except self.nvml.NVMLError:
                pass
        try:
            node = int((self.sysfs_pci / self.bus_ids[index] / "numa_node").read_text().strip())
        except (OSError, ValueError):
            return None
        return node if node >= 0 else None  # -1: the kernel knows no NUMA node

    def _nvlinks(self) -> tuple[dict[tuple[int, int], int], list[int]]:
        nvml = self.nvml
        by_bus = {bus: i for i, bus in enumerate(self.bus_ids)}
        direct: dict[tuple[int, int], int] = {}
        switch = [0] * self.count
        max_links = getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18)
        enabled = getattr(nvml, "NVML_FEATURE_ENABLED", 1)
        for i, handle in enumerate(self.handles):
            for link in range(max_links):
                try:
                    if nvml.nvmlDeviceGetNvLinkState(handle, link) != enabled:
                        continue
                    remote = normalize_pci_bus_id(nvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link).busId)
                except nvml.NVMLError:
                    continue  # no such link on this GPU, or NVLink not supported at all
                if remote in by_bus:
                    j = by_bus[remote]
                    direct[(i, j)] = direct.get((i, j), 0) + 1
                elif self._remote_is_switch(handle, link):
                    switch[i] += 1
        return direct, switch

    def _remote_is_switch(self, handle: Any, link: int) -> bool:
        getter = getattr(self.nvml, "nvmlDeviceGetNvLinkRemoteDeviceType", None)
        if getter is None:
            return True  # old drivers: a far end that is no GPU of ours is an NVSwitch
        try:
            return getter(handle, link) == _NVLINK_SWITCH
        except self.nvml.NVMLError:
            return True

    def _mig_devices(self, handle: Any) -> tuple[MigDevice, ...]:
        nvml = self.nvml
        try:
            current, _pending = nvml.nvmlDeviceGetMigMode(handle)
        except (nvml.NVMLError, AttributeError):
            return ()  # not MIG-capable
        if current != getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1):
            return ()
        found = []
        for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except nvml.NVMLError:
                continue  # empty slot
            found.append(
                MigDevice(
                    index=slot,
                    uuid=_text(nvml.nvmlDeviceGetUUID(mig)),
                    name=_text(nvml.nvmlDeviceGetName(mig)),
                    memory=int(nvml.nvmlDeviceGetMemoryInfo(mig).total),
                    gpu_instance_id=_optional(nvml, nvml.nvmlDeviceGetGpuInstanceId, mig),
                    compute_instance_id=_optional(nvml, nvml.nvmlDeviceGetComputeInstanceId, mig),
                )
            )
        return tuple(found)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(nvml: Any, getter: Any, handle: Any) -> int | None:
    try:
        return int(getter(handle))
    except nvml.NVMLError:
        return None
