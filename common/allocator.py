"""The node allocator: pure code shared by the scheduler and the agent.

``NodeState`` tracks what is free on one node and decides where a request
goes on it. The scheduler builds one per candidate node to filter and score;
the agent keeps one to re-check and apply. No I/O here.

CPU: ``cpu`` is a Decimal amount of cores. A whole-number request is also
given that many distinct cores (``cpu_cores``), chosen from the NUMA nodes of
its GPUs first (`corral.common.gpu.allocator.pick_cpu_cores`); a fractional
request shares the node and gets only a quota.

GPUs: ``cuda.device`` (whole GPUs, best-connected set) or ``cuda.shares``
(fractions, best-fit), decided by `corral.common.gpu_slots.NodeGpuState`
on the node's topology; see `corral.common.gpu.allocator` for the contract.
"""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Iterable

from .gpu.allocator import pick_cpu_cores
from .node_resources import Allocation, NodeCapacity
from .slots import CPU, CUDA_DEVICE, CUDA_SHARES, MEM, ResourceSlot

if TYPE_CHECKING:
    from .gpu_slots import NodeGpuState


class NodeState:
    def __init__(self, capacity: NodeCapacity, allocations: Iterable[Allocation] = ()) -> None:
        self.capacity = capacity
        self.cpu_used = Decimal(0)
        self.mem_used = 0
        self.pinned_cores: set[int] = set()
        self.gpus = _make_gpu_state(capacity)
        for allocation in allocations:
            self.add(allocation)

    # Book-keeping ---------------------------------------------------------
    def add(self, allocation: Allocation) -> None:
        """Record an existing allocation (replaying state from the database)."""
        self.cpu_used += allocation.cpu
        self.mem_used += allocation.mem
        self.pinned_cores.update(allocation.cpu_cores)
        if self.gpus is not None and allocation.gpu_shares:
            self.gpus.take(allocation.gpu_shares)

    def release(self, allocation: Allocation) -> None:
        self.cpu_used -= allocation.cpu
        self.mem_used -= allocation.mem
        self.pinned_cores.difference_update(allocation.cpu_cores)
        if self.gpus is not None and allocation.gpu_shares:
            self.gpus.give_back(allocation.gpu_shares)

    def can_take(self, allocation: Allocation) -> bool:
        """Would this exact allocation (decided elsewhere) still fit here? The agent's re-check."""
        if self.cpu_used + allocation.cpu > len(self.capacity.cpu_cores):
            return False
        if self.mem_used + allocation.mem > self.capacity.mem:
            return False
        if self.pinned_cores.intersection(allocation.cpu_cores) or not set(allocation.cpu_cores) <= set(self.capacity.cpu_cores):
            return False
        if allocation.gpu_shares:
            return self.gpus is not None and self.gpus.can_take(allocation.gpu_shares)
        return True

    def occupied_slots(self) -> ResourceSlot:
        slots: dict[str, object] = {CPU: self.cpu_used, MEM: self.mem_used}
        if self.gpus is not None:
            slots.update(self.gpus.occupied_slots())
        return ResourceSlot(slots)

    def free_slots(self) -> ResourceSlot:
        return self.capacity.slots() - self.occupied_slots()

    # Decisions ------------------------------------------------------------
    def can_ever_fit(self, request: ResourceSlot) -> list[str]:
        """Slot names this node could not give even when empty ([] = fits).

        First the slots whose amount exceeds the node's total (a GPU request on
        a node without GPUs names ``cuda.device`` / ``cuda.shares``); when each
        total suffices but the request still cannot be placed, the slots that
        fail on their own (e.g. more whole CPU cores than the node has free of
        pinning, or a share that no single device can give).
        """
        empty = NodeState(self.capacity)
        if empty.try_allocate(request) is not None:
            return []
        lacking = request.exceeding(self.capacity.slots())
        if lacking:
            return lacking
        alone = [slot for slot in request if NodeState(self.capacity).try_allocate(ResourceSlot({slot: request[slot]})) is None]
        return sorted(alone) or sorted(request)

    def try_allocate(self, request: ResourceSlot, *, with_cores: bool = True) -> Allocation | None:
        """Pick resources for ``request`` without taking them; None if it does not fit.

        ``with_cores=False`` only checks that enough cores are free and leaves
        ``cpu_cores`` empty: the scheduler's filter asks every node, but only
        the chosen one needs its cores picked.
        """
        cpu = request[CPU]
        mem = int(request[MEM])
        if self.cpu_used + cpu > len(self.capacity.cpu_cores) or self.mem_used + mem > self.capacity.mem:
            return None
        gpu_shares: dict[int, Decimal] = {}
        gpu_whole = False
        preferred_numa: tuple[int, ...] = ()
        if request[CUDA_DEVICE] or request[CUDA_SHARES]:
            if self.gpus is None:
                return None
            picked = self.gpus.pick(request[CUDA_DEVICE], request[CUDA_SHARES])
            if picked is None:
                return None
            gpu_shares, preferred_numa = picked
            gpu_whole = bool(request[CUDA_DEVICE])
        cores: tuple[int, ...] = ()
        spilled = False
        if cpu == cpu.to_integral_value() and cpu > 0:
            if not with_cores:
                if len(self.capacity.cpu_cores) - len(self.pinned_cores) < int(cpu):
                    return None
                return Allocation(cpu=cpu, mem=mem, numa_nodes=preferred_numa, gpu_shares=gpu_shares, gpu_whole=gpu_whole)
            chosen = self._pick_cores(int(cpu), preferred_numa)
            if chosen is None:
                return None
            cores, spilled = chosen
        numa_nodes = tuple(sorted({self.capacity.numa_of_core.get(c, 0) for c in cores} | set(preferred_numa)))
        return Allocation(
            cpu=cpu,
            mem=mem,
            cpu_cores=cores,
            numa_nodes=numa_nodes if self.capacity.numa_of_core else (),
            cpu_spilled=spilled,
            gpu_shares=gpu_shares,
            gpu_whole=gpu_whole,
        )

    def allocate(self, request: ResourceSlot) -> Allocation | None:
        allocation = self.try_allocate(request)
        if allocation is not None:
            self.add(allocation)
        return allocation

    def _pick_cores(self, count: int, preferred_numa: tuple[int, ...]) -> tuple[tuple[int, ...], bool] | None:
        free = frozenset(c for c in self.capacity.cpu_cores if c not in self.pinned_cores)
        numa = self.capacity.numa_of_core
        # Without a NUMA map there is nothing to prefer (nor to spill from).
        return pick_cpu_cores(free, numa, preferred_numa if numa else (), count)


def _make_gpu_state(capacity: NodeCapacity) -> "NodeGpuState | None":
    if not capacity.gpu_count:
        return None
    from .gpu_slots import NodeGpuState

    return NodeGpuState.from_topology_json(capacity.gpu_topology)
