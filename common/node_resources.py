"""A node's resource model and the allocations made on it (pure data).

``NodeCapacity`` is what an agent advertises; ``Allocation`` is what one
kernel holds. Both travel as JSON between agent, manager and database.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

from .slots import CPU, CUDA_DEVICE, CUDA_SHARES, MEM, ResourceSlot


@dataclass(frozen=True)
class NodeCapacity:
    cpu_cores: tuple[int, ...]
    mem: int
    numa_of_core: Mapping[int, int] = field(default_factory=dict)
    # GPU topology as JSON (corral.common.gpu.topology.GpuTopology.to_json()), or None.
    gpu_topology: Mapping[str, Any] | None = None

    @property
    def gpu_count(self) -> int:
        return len(self.gpu_topology.get("devices", [])) if self.gpu_topology else 0

    def slots(self) -> ResourceSlot:
        slots: dict[str, object] = {CPU: len(self.cpu_cores), MEM: self.mem}
        if self.gpu_count:
            slots[CUDA_DEVICE] = self.gpu_count
            slots[CUDA_SHARES] = self.gpu_count
        return ResourceSlot(slots)

    def to_json(self) -> dict[str, Any]:
        return {
            "cpu_cores": list(self.cpu_cores),
            "mem": self.mem,
            "numa_of_core": {str(k): v for k, v in self.numa_of_core.items()},
            "gpu_topology": dict(self.gpu_topology) if self.gpu_topology else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "NodeCapacity":
        return cls(
            cpu_cores=tuple(int(c) for c in data.get("cpu_cores", ())),
            mem=int(data.get("mem", 0)),
            numa_of_core={int(k): int(v) for k, v in (data.get("numa_of_core") or {}).items()},
            gpu_topology=data.get("gpu_topology"),
        )


@dataclass(frozen=True)
class Allocation:
    """What one kernel holds on its node."""

    cpu: Decimal
    mem: int
    cpu_cores: tuple[int, ...] = ()
    numa_nodes: tuple[int, ...] = ()
    cpu_spilled: bool = False  # cores had to come from outside the GPUs' NUMA nodes
    gpu_shares: Mapping[int, Decimal] = field(default_factory=dict)  # device index -> share
    gpu_whole: bool = False  # True: whole devices (cuda.device); False: fractions

    def slots(self) -> ResourceSlot:
        slots: dict[str, object] = {CPU: self.cpu, MEM: self.mem}
        total_share = sum(self.gpu_shares.values(), Decimal(0))
        if self.gpu_whole:
            slots[CUDA_DEVICE] = total_share
        elif total_share:
            slots[CUDA_SHARES] = total_share
        return ResourceSlot(slots)

    def to_json(self) -> dict[str, Any]:
        return {
            "cpu": str(self.cpu),
            "mem": self.mem,
            "cpu_cores": list(self.cpu_cores),
            "numa_nodes": list(self.numa_nodes),
            "cpu_spilled": self.cpu_spilled,
            "gpu_shares": {str(k): str(v) for k, v in sorted(self.gpu_shares.items())},
            "gpu_whole": self.gpu_whole,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Allocation":
        return cls(
            cpu=Decimal(str(data.get("cpu", "0"))),
            mem=int(data.get("mem", 0)),
            cpu_cores=tuple(int(c) for c in data.get("cpu_cores", ())),
            numa_nodes=tuple(int(n) for n in data.get("numa_nodes", ())),
            cpu_spilled=bool(data.get("cpu_spilled", False)),
            gpu_shares={int(k): Decimal(str(v)) for k, v in (data.get("gpu_shares") or {}).items()},
            gpu_whole=bool(data.get("gpu_whole", False)),
        )
