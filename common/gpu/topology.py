"""A node's GPUs and the links between them (DESIGN §4).

Both discovery paths — NVML on a real node and the mock plugin's topology
file — produce a `GpuTopology`; everything above discovery (the allocator, the
scheduler, the CLI) sees only this model. It travels between agent and manager
as the plain JSON document of `to_json()`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from .cpu_list import format_cpu_list, parse_cpu_list
from .links import SELF, link_bandwidth_gbps, link_rank, normalize_link_label


@dataclass(frozen=True)
class MigDevice:
    """One MIG instance of a GPU in MIG mode."""

    index: int  # position among the parent's MIG devices
    uuid: str  # "MIG-…", what CUDA_VISIBLE_DEVICES / Docker device requests take
    name: str  # e.g. "NVIDIA A100-SXM4-80GB MIG 1g.10gb"
    memory: int  # bytes
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "memory": self.memory,
            "gpu_instance_id": self.gpu_instance_id,
            "compute_instance_id": self.compute_instance_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "MigDevice":
        return cls(
            index=int(data["index"]),
            uuid=str(data["uuid"]),
            name=str(data.get("name", "")),
            memory=int(data.get("memory", 0)),
            gpu_instance_id=_optional_int(data.get("gpu_instance_id")),
            compute_instance_id=_optional_int(data.get("compute_instance_id")),
        )


@dataclass(frozen=True)
class GpuDevice:
    index: int  # NVML index; also the device's row/column in GpuTopology.links
    uuid: str
    model: str
    memory: int  # bytes
    numa_node: int | None  # the NUMA node of the CPUs close to this GPU
    cpu_affinity: tuple[int, ...]  # CPU cores close to this GPU, ascending
    pci_bus_id: str = ""
    mig: tuple[MigDevice, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "uuid": self.uuid,
            "model": self.model,
            "memory": self.memory,
            "numa_node": self.numa_node,
            # The compact list syntax keeps a 256-core node's document small.
            "cpu_affinity": format_cpu_list(self.cpu_affinity),
            "pci_bus_id": self.pci_bus_id,
            "mig": [m.to_json() for m in self.mig],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "GpuDevice":
        affinity = data.get("cpu_affinity", "")
        cores = parse_cpu_list(affinity) if isinstance(affinity, str) else tuple(sorted(int(c) for c in affinity))
        return cls(
            index=int(data["index"]),
            uuid=str(data["uuid"]),
            model=str(data.get("model", "")),
            memory=int(data.get("memory", 0)),
            numa_node=_optional_int(data.get("numa_node")),
            cpu_affinity=cores,
            pci_bus_id=str(data.get("pci_bus_id", "")),
            mig=tuple(MigDevice.from_json(m) for m in data.get("mig", ())),
        )


@dataclass(frozen=True)
class GpuTopology:
    """GPUs of one node plus the `nvidia-smi topo -m` matrix between them.

    ``devices[i].index == i`` and ``links[i][j]`` is the label between devices
    i and j (``"X"`` on the diagonal); the matrix is symmetric.
    """

    devices: tuple[GpuDevice, ...] = ()
    links: tuple[tuple[str, ...], ...] = ()
    # Derived data (e.g. the allocator's precomputed tables and memo) hangs
    # here so it lives exactly as long as this immutable topology; it is never
    # part of the topology's identity.
    _derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        count = len(self.devices)
        if len(self.links) != count or any(len(row) != count for row in self.links):
            raise ConfigError(f"GPU link matrix must be {count}×{count}")
        for position, device in enumerate(self.devices):
            if device.index != position:
                raise ConfigError(f"GPU devices must be listed by index: position {position} holds GPU {device.index}")
        normalized = tuple(tuple(normalize_link_label(label) for label in row) for row in self.links)
        for i in range(count):
            if normalized[i][i] != SELF:
                raise ConfigError(f"GPU{i}'s own cell must be X, not {normalized[i][i]!r}")
            for j in range(i + 1, count):
                if normalized[i][j] == SELF:
                    raise ConfigError(f"X between distinct GPUs {i} and {j}")
                if normalized[i][j] != normalized[j][i]:
                    raise ConfigError(
                        f"GPU link matrix is not symmetric: GPU{i}-GPU{j} is {normalized[i][j]}, "
                        f"GPU{j}-GPU{i} is {normalized[j][i]}"
                    )
        object.__setattr__(self, "links", normalized)

    # Queries -----------------------------------------------------------
    @property
    def device_count(self) -> int:
        return len(self.devices)

    def link(self, a: int, b: int) -> str:
        return self.links[a][b]

    def link_rank(self, a: int, b: int) -> int:
        """Quality of the a-b link; higher is better (see `links.link_rank`)."""
        return link_rank(self.links[a][b])

    def link_bandwidth_gbps(self, a: int, b: int) -> int:
        return link_bandwidth_gbps(self.links[a][b])

    def numa_nodes(self) -> tuple[int, ...]:
        """The distinct NUMA nodes the GPUs sit on, ascending (unknown ones left out)."""
        return tuple(sorted({d.numa_node for d in self.devices if d.numa_node is not None}))

    def numa_nodes_of(self, indexes: Sequence[int]) -> tuple[int, ...]:
        return tuple(sorted({self.devices[i].numa_node for i in indexes if self.devices[i].numa_node is not None}))

    def cpu_cores(self) -> tuple[int, ...]:
        """Every CPU core some GPU has affinity to, ascending."""
        return tuple(sorted({core for d in self.devices for core in d.cpu_affinity}))

    def numa_of_core(self) -> dict[int, int]:
        """CPU core -> NUMA node, as far as the GPUs' affinities tell."""
        mapping: dict[int, int] = {}
        for device in self.devices:
            if device.numa_node is not None:
                for core in device.cpu_affinity:
                    mapping.setdefault(core, device.numa_node)
        return mapping

    # Wire format -------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "devices": [d.to_json() for d in self.devices],
            "links": [list(row) for row in self.links],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "GpuTopology":
        if not data:
            return cls()
        return cls(
            devices=tuple(GpuDevice.from_json(d) for d in data.get("devices", ())),
            links=tuple(tuple(str(label) for label in row) for row in data.get("links", ())),
        )


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[arg-type]
