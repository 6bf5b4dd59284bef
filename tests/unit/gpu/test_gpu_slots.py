"""NodeGpuState and NodeState with GPUs: picking, CPU cores by NUMA, exact release."""
from __future__ import annotations

from decimal import Decimal
from itertools import combinations

import pytest

from corral.common.allocator import NodeState
from corral.common.errors import Conflict
from corral.common.gpu.allocator import pick_whole_gpus, score_whole_gpu_set
from corral.common.gpu_slots import NodeGpuState, describe_gpus, topology_from_json
from corral.common.node_resources import Allocation, NodeCapacity
from corral.common.slots import CUDA_DEVICE, CUDA_SHARES, ResourceSlot

from .topologies import load

D = Decimal


def capacity_of(name: str, mem: int = 2**40) -> NodeCapacity:
    topology = load(name)
    return NodeCapacity(
        cpu_cores=topology.cpu_cores(), mem=mem, numa_of_core=topology.numa_of_core(), gpu_topology=topology.to_json()
    )


def request(**slots: object) -> ResourceSlot:
    return ResourceSlot({k.replace("_", "."): v for k, v in slots.items()})


# NodeGpuState ------------------------------------------------------------------------
def test_pick_whole_gpus_is_the_allocators_choice_with_their_numa_nodes() -> None:
    topology = load("dgx1-v100.toml")
    gpus = NodeGpuState(topology)
    picked = gpus.pick(D(4), D(0))
    assert picked is not None
    allocation, numa = picked
    expected = pick_whole_gpus(topology, frozenset(range(8)), 4)
    assert allocation == {i: D(1) for i in expected}
    assert numa == tuple(sorted({topology.devices[i].numa_node for i in expected}))
    assert gpus.free_shares == {i: D(1) for i in range(8)}  # picking takes nothing


def test_preferred_numa_lists_the_node_with_most_chosen_gpus_first() -> None:
    gpus = NodeGpuState(load("pcie-8gpu-dual-socket.toml"))
    numa_of = {d.index: d.numa_node for d in gpus.topology.devices}
    one_on_first = [i for i in range(8) if numa_of[i] == 0][:1]
    three_on_second = [i for i in range(8) if numa_of[i] == 1][:3]
    preferred = gpus.preferred_numa({i: D(1) for i in one_on_first + three_on_second})
    assert preferred == (1, 0)


def test_fraction_is_best_fit_and_whole_gpus_stay_free() -> None:
    gpus = NodeGpuState(load("mock-2gpu.toml"))
    gpus.take({1: D("0.5")})
    allocation, _ = gpus.pick(D(0), D("0.25"))  # type: ignore[misc]
    assert allocation == {1: D("0.25")}
    assert gpus.pick(D(0), D("0.75")) == ({0: D("0.75")}, (0,))
    assert gpus.pick(D(2), D(0)) is None  # GPU 1 is not fully free


def test_nothing_asked_is_nothing_picked_and_both_kinds_are_refused() -> None:
    gpus = NodeGpuState(load("mock-2gpu.toml"))
    assert gpus.pick(D(0), D(0)) == ({}, ())
    assert gpus.pick(D(1), D("0.5")) is None
    assert gpus.pick(D(3), D(0)) is None


def test_occupied_slots_count_devices_in_use_and_shares_in_use() -> None:
    gpus = NodeGpuState(load("workstation-4gpu-nvlink-pairs.toml"))
    gpus.take({0: D(1), 1: D(1)})
    gpus.take({2: D("0.3")})
    assert gpus.occupied_slots() == {CUDA_DEVICE: D(3), CUDA_SHARES: D("2.3")}
    gpus.give_back({2: D("0.3")})
    gpus.give_back({0: D(1), 1: D(1)})
    assert gpus.occupied_slots() == {CUDA_DEVICE: D(0), CUDA_SHARES: D(0)}
    assert gpus.free_shares == {i: D(1) for i in range(4)}


def test_can_take_is_exact_and_changes_nothing() -> None:
    gpus = NodeGpuState(load("mock-2gpu.toml"))
    gpus.take({0: D("0.6")})
    assert gpus.can_take({0: D("0.4")})
    assert not gpus.can_take({0: D("0.41")})
    assert not gpus.can_take({5: D("0.1")})
    assert not gpus.can_take({1: D("0.001")})
    assert gpus.free_shares == {0: D("0.4"), 1: D(1)}
    with pytest.raises(Conflict):
        gpus.take({0: D("0.5")})
    with pytest.raises(Conflict):
        gpus.give_back({1: D("0.5")})  # never taken


def test_describe_gives_uuid_model_share_and_memory_limit() -> None:
    topology = load("mock-2gpu.toml")
    details = describe_gpus(topology, {1: D("0.25")})
    assert details == [
        {
            "index": 1,
            "uuid": topology.devices[1].uuid,
            "model": "NVIDIA Mock GPU",
            "share": "0.25",
            "mem_limit": 4 * 2**30,
        }
    ]


def test_parsed_topologies_are_shared_so_allocator_tables_stay_warm() -> None:
    data = load("dgx-a100.toml").to_json()
    assert topology_from_json(data) is topology_from_json(dict(data))
    assert topology_from_json(None).device_count == 0


def test_device_views_show_free_share_per_gpu() -> None:
    gpus = NodeGpuState(load("mock-2gpu.toml"))
    gpus.take({0: D("0.25")})
    views = gpus.device_views()
    assert [(v["index"], v["free_share"]) for v in views] == [(0, "0.75"), (1, "1")]
    assert views[0]["cpu_affinity"] == "0-3" and views[0]["numa_node"] == 0


# NodeState with GPUs -----------------------------------------------------------------------
def test_capacity_advertises_gpu_count_as_both_slots() -> None:
    slots = capacity_of("dgx-a100.toml").slots()
    assert slots[CUDA_DEVICE] == 8 and slots[CUDA_SHARES] == 8


def test_whole_gpus_get_cores_on_their_numa_nodes() -> None:
    capacity = capacity_of("pcie-8gpu-dual-socket.toml")
    state = NodeState(capacity)
    allocation = state.try_allocate(request(cpu=4, mem=2**30, cuda_device=2))
    assert allocation is not None and allocation.gpu_whole
    topology = topology_from_json(capacity.gpu_topology)
    gpu_numa = {topology.devices[i].numa_node for i in allocation.gpu_shares}
    assert {capacity.numa_of_core[c] for c in allocation.cpu_cores} <= gpu_numa
    assert not allocation.cpu_spilled
    assert set(allocation.numa_nodes) == gpu_numa


def test_cores_spill_to_other_numa_nodes_only_when_needed_and_say_so() -> None:
    capacity = capacity_of("pcie-8gpu-dual-socket.toml")
    topology = topology_from_json(capacity.gpu_topology)
    state = NodeState(capacity)
    per_node = len([c for c in capacity.cpu_cores if capacity.numa_of_core[c] == 0])
    allocation = state.allocate(request(cpu=per_node + 2, mem=2**30, cuda_device=1))
    assert allocation is not None
    gpu_node = topology.devices[next(iter(allocation.gpu_shares))].numa_node
    on_gpu_node = [c for c in allocation.cpu_cores if capacity.numa_of_core[c] == gpu_node]
    assert len(on_gpu_node) == per_node  # every core of the GPU's node first
    assert allocation.cpu_spilled
    assert len(allocation.numa_nodes) == 2


def test_allocation_and_release_restore_capacity_exactly() -> None:
    capacity = capacity_of("dgx-a100.toml")
    state = NodeState(capacity)
    taken = [
        state.allocate(request(cpu=8, mem=2**30, cuda_device=4)),
        state.allocate(request(cpu="0.5", mem=2**20, cuda_shares="0.2")),
        state.allocate(request(cpu=1, mem=2**20, cuda_shares="0.2")),
        state.allocate(request(cpu=2, mem=2**20, cuda_shares="1.5")),
    ]
    assert all(a is not None for a in taken)
    # Two 0.2 fractions share a device (best-fit), the 1.5 takes a whole one plus half of another.
    assert taken[1].gpu_shares.keys() == taken[2].gpu_shares.keys()  # type: ignore[union-attr]
    assert sorted(taken[3].gpu_shares.values()) == [D("0.5"), D(1)]  # type: ignore[union-attr]
    for allocation in reversed(taken):
        state.release(allocation)  # type: ignore[arg-type]
    assert state.free_slots() == capacity.slots()
    assert state.gpus is not None and state.gpus.free_shares == {i: D(1) for i in range(8)}
    assert not state.pinned_cores


def test_replayed_allocations_from_json_take_the_same_shares() -> None:
    capacity = capacity_of("mock-2gpu.toml")
    first = NodeState(capacity).try_allocate(request(cpu=1, mem=2**20, cuda_shares="0.25"))
    assert first is not None
    replayed = NodeState(capacity, [Allocation.from_json(first.to_json())])
    assert replayed.gpus is not None and replayed.gpus.free_shares[next(iter(first.gpu_shares))] == D("0.75")
    assert not replayed.can_take(first)  # its core is pinned now
    assert replayed.can_take(Allocation(cpu=D(0), mem=0, gpu_shares={0: D("0.75")}))
    assert not replayed.can_take(Allocation(cpu=D(0), mem=0, gpu_shares=dict.fromkeys(first.gpu_shares, D(1))))


def test_agent_recheck_refuses_gpu_allocations_on_a_node_without_gpus() -> None:
    state = NodeState(NodeCapacity(cpu_cores=(0, 1), mem=2**30))
    assert not state.can_take(Allocation(cpu=D(1), mem=0, gpu_shares={0: D(1)}, gpu_whole=True))


def test_multi_gpu_choice_scores_like_the_contract_says() -> None:
    capacity = capacity_of("dgx1-v100.toml")
    state = NodeState(capacity)
    allocation = state.try_allocate(request(cpu=1, mem=1, cuda_device=4))
    assert allocation is not None
    topology = topology_from_json(capacity.gpu_topology)
    chosen = score_whole_gpu_set(topology, allocation.gpu_shares, range(8)).key()
    best = max(score_whole_gpu_set(topology, s, range(8)).key() for s in combinations(range(8), 4))
    assert chosen == best


# can_ever_fit: the 422's slot names ------------------------------------------------------
@pytest.mark.parametrize(
    ("slots", "lacking"),
    [
        ({"cuda.device": 1}, ["cuda.device"]),
        ({"cuda.shares": "0.5"}, ["cuda.shares"]),
        ({"cpu": 1, "cuda.device": 1}, ["cuda.device"]),
    ],
)
def test_gpu_request_on_a_node_without_gpus_names_the_gpu_slot(slots: dict, lacking: list[str]) -> None:
    state = NodeState(NodeCapacity(cpu_cores=(0, 1, 2, 3), mem=2**32))
    assert state.can_ever_fit(ResourceSlot(slots)) == lacking


def test_too_many_gpus_or_shares_names_the_gpu_slot() -> None:
    state = NodeState(capacity_of("mock-2gpu.toml"))
    assert state.can_ever_fit(request(cuda_device=3)) == ["cuda.device"]
    assert state.can_ever_fit(request(cuda_shares="2.5")) == ["cuda.shares"]
    assert state.can_ever_fit(request(cuda_shares="2")) == []
    assert state.can_ever_fit(request(cpu=5, cuda_device=1)) == ["cpu"]
