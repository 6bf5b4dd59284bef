"""The GPU part of a node's allocator state, in the slot vocabulary of `NodeState`.

`NodeGpuState` adapts `corral.common.gpu.GpuNodeState` (free share per
device, the pure picking rules) to what `corral.common.allocator.NodeState`
needs: pick for a request given as ``cuda.device`` / ``cuda.shares`` amounts,
take and give back exact ``{device index: share}`` allocations, and report
occupancy as slots:

- ``cuda.shares`` occupied = total share in use (a whole GPU counts 1.0);
- ``cuda.device`` occupied = devices with any share in use.

So ``capacity - occupied`` reads as "fully free GPUs" and "free share summed
over devices", the two numbers a user asking for ``--gpus`` or ``--gpu-share``
cares about.

It also renders the per-device detail that users see (`describe`,
`device_views`). Parsed topologies are cached by content, so rebuilding node
states every scheduler pass keeps the allocator's per-topology tables and memo.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from decimal import Decimal
from typing import Any, Mapping

from .errors import CorralError
from .gpu.allocator import WHOLE
from .gpu.node_state import GpuAllocation, GpuNodeState
from .gpu.topology import GpuTopology
from .slots import CUDA_DEVICE, CUDA_SHARES

_TOPOLOGY_CACHE_SIZE = 256
_topology_cache: "OrderedDict[str, GpuTopology]" = OrderedDict()


def topology_from_json(data: Mapping[str, Any] | None) -> GpuTopology:
    """`GpuTopology.from_json`, memoized by content.

    The scheduler rebuilds every node's state on each pass from the JSON the
    agent sent; reusing the same immutable topology object keeps the
    allocator's tables and per-free-set memo (which hang off the topology)
    warm across passes.
    """
    if not data:
        return GpuTopology()
    key = json.dumps(data, sort_keys=True, separators=(",", ":"))
    topology = _topology_cache.get(key)
    if topology is None:
        topology = GpuTopology.from_json(data)
        _topology_cache[key] = topology
        if len(_topology_cache) > _TOPOLOGY_CACHE_SIZE:
            _topology_cache.popitem(last=False)
    else:
        _topology_cache.move_to_end(key)
    return topology


class NodeGpuState:
    def __init__(self, topology: GpuTopology) -> None:
        self._state = GpuNodeState(topology)

    @classmethod
    def from_topology_json(cls, data: Mapping[str, Any] | None) -> "NodeGpuState":
        return cls(topology_from_json(data))

    # Queries ----------------------------------------------------------------
    @property
    def topology(self) -> GpuTopology:
        return self._state.topology

    @property
    def free_shares(self) -> dict[int, Decimal]:
        return self._state.free_shares

    def fully_free(self) -> frozenset[int]:
        return self._state.fully_free()

    def occupied_slots(self) -> dict[str, Decimal]:
        free = self._state.free_shares
        return {
            CUDA_DEVICE: Decimal(sum(1 for amount in free.values() if amount < WHOLE)),
            CUDA_SHARES: self._state.used(),
        }

    def can_take(self, shares: Mapping[int, Decimal]) -> bool:
        """Would exactly these shares fit now? (The agent's re-check of the scheduler's decision.)"""
        trial = GpuNodeState(self.topology, self._state.free_shares)
        try:
            trial.reserve(shares)
        except CorralError:
            return False
        return True

    # Decisions ----------------------------------------------------------------
    def pick(self, device_count: Decimal, shares: Decimal) -> tuple[GpuAllocation, tuple[int, ...]] | None:
        """Devices for a request of ``device_count`` whole GPUs or ``shares`` of GPU (one of them).

        Returns ``({device index: share}, preferred NUMA nodes)`` without
        taking anything, or None when the node cannot give it now. The NUMA
        nodes are those of the chosen GPUs, the ones holding the most chosen
        GPUs first, so CPU cores come from where most of the GPUs are.
        """
        device_count, shares = Decimal(device_count), Decimal(shares)
        if device_count and shares:
            return None  # validate_request refuses this; never half-honour it here
        if device_count:
            if device_count != device_count.to_integral_value():
                return None
            allocation = self._state.plan_whole(int(device_count))
        elif shares:
            allocation = self._state.plan_fraction(shares)
        else:
            return {}, ()
        if allocation is None:
            return None
        return allocation, self.preferred_numa(allocation)

    def preferred_numa(self, allocation: Mapping[int, Decimal]) -> tuple[int, ...]:
        counts: dict[int, int] = {}
        for index in allocation:
            node = self.topology.devices[index].numa_node
            if node is not None:
                counts[node] = counts.get(node, 0) + 1
        return tuple(sorted(counts, key=lambda node: (-counts[node], node)))

    # Changes --------------------------------------------------------------------
    def take(self, shares: Mapping[int, Decimal]) -> None:
        self._state.reserve(shares)

    def give_back(self, shares: Mapping[int, Decimal]) -> None:
        self._state.release(shares)

    # What users see -------------------------------------------------------------
    def describe(self, shares: Mapping[int, Decimal]) -> list[dict[str, Any]]:
        """Per chosen device: index, UUID, model, share and memory limit (bytes), by index."""
        return describe_gpus(self.topology, shares)

    def device_views(self) -> list[dict[str, Any]]:
        """Every GPU of the node with its free share (the agents endpoint)."""
        free = self._state.free_shares
        return [
            {
                "index": device.index,
                "uuid": device.uuid,
                "model": device.model,
                "memory": device.memory,
                "numa_node": device.numa_node,
                "cpu_affinity": device.to_json()["cpu_affinity"],
                "pci_bus_id": device.pci_bus_id,
                "free_share": str(free[device.index]),
                "mig": [m.to_json() for m in device.mig],
            }
            for device in self.topology.devices
        ]

    def __repr__(self) -> str:
        return f"NodeGpuState({self._state!r})"


def gpu_memory_limit(share: Decimal, memory: int) -> int:
    """Bytes a share of a device may use: share × device memory, rounded down."""
    return int(Decimal(share) * memory)


def describe_gpus(topology: GpuTopology, shares: Mapping[int, Decimal]) -> list[dict[str, Any]]:
    details = []
    for index in sorted(shares):
        device = topology.devices[index]
        share = Decimal(shares[index])
        details.append(
            {
                "index": index,
                "uuid": device.uuid,
                "model": device.model,
                "share": str(share),
                "mem_limit": gpu_memory_limit(share, device.memory),
            }
        )
    return details
