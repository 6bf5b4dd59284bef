from __future__ import annotations

from decimal import Decimal as D

import pytest

from corral.common.errors import Conflict, InvalidRequest
from corral.common.gpu.allocator import (
    pick_cpu_cores,
    pick_gpu_fraction,
    pick_whole_gpus,
    score_whole_gpu_set,
)
from corral.common.gpu.node_state import GpuNodeState
from corral.common.gpu.topology import GpuTopology

from .oracle import exhaustive_pick_whole_gpus, objective_key
from .topologies import load

ALL8 = frozenset(range(8))


def test_dgx1_pairs_take_a_double_nvlink_and_quads_stay_on_nvlink() -> None:
    topology = load("dgx1-v100.toml")
    pair = pick_whole_gpus(topology, ALL8, 2)
    assert topology.link(*pair) == "NV2"
    quad = pick_whole_gpus(topology, ALL8, 4)
    assert all(topology.link(a, b).startswith("NV") for a in quad for b in quad if a != b)
    assert len(topology.numa_nodes_of(quad)) == 1


def test_weakest_link_beats_numa_locality() -> None:
    # GPU0-GPU4 is NV2 across sockets; GPU0-GPU1 is only NV1 within one.
    topology = load("dgx1-v100.toml")
    chosen = pick_whole_gpus(topology, frozenset({0, 1, 4}), 2)
    assert chosen == (0, 4)


def test_pcie_server_prefers_a_switch_pair_and_the_better_socket() -> None:
    topology = load("pcie-8gpu-dual-socket.toml")
    assert topology.link(*pick_whole_gpus(topology, ALL8, 2)) == "PIX"
    assert pick_whole_gpus(topology, ALL8, 4) == (0, 1, 2, 3)  # PXB beats NODE
    assert pick_whole_gpus(topology, frozenset({0, 1, 2, 3, 4, 5, 6}), 3) == (0, 1, 2)


def test_leftover_criterion_keeps_nvlink_pairs_whole() -> None:
    topology = load("workstation-4gpu-nvlink-pairs.toml")
    # Any single GPU scores the same on criteria 1-3; taking GPU2 from the
    # broken pair {2} + {0, 1} leaves the intact NV4 pair free.
    assert pick_whole_gpus(topology, frozenset({0, 1, 2}), 1) == (2,)
    assert pick_whole_gpus(topology, frozenset({0, 1, 2, 3}), 2) in {(0, 1), (2, 3)}


def test_edge_counts_and_bad_input() -> None:
    topology = load("dgx-a100.toml")
    assert pick_whole_gpus(topology, ALL8, 0) == ()
    assert pick_whole_gpus(topology, frozenset({1, 2}), 3) is None
    assert pick_whole_gpus(topology, frozenset(), 1) is None
    assert pick_whole_gpus(topology, ALL8, 8) == tuple(range(8))
    with pytest.raises(InvalidRequest):
        pick_whole_gpus(topology, frozenset({9}), 1)
    with pytest.raises(InvalidRequest):
        pick_whole_gpus(topology, ALL8, -1)
    assert pick_whole_gpus(GpuTopology(), frozenset(), 1) is None


def test_memoized_answer_is_the_same() -> None:
    topology = load("dgx1-v100.toml")
    free = frozenset({0, 2, 3, 5, 6, 7})
    assert pick_whole_gpus(topology, free, 3) == pick_whole_gpus(topology, free, 3) == exhaustive_pick_whole_gpus(topology, free, 3)


def test_score_matches_the_contract() -> None:
    topology = load("pcie-8gpu-dual-socket.toml")
    free = frozenset({0, 1, 2, 4, 5})
    for chosen in [(0, 1), (0, 4), (1, 2, 5)]:
        assert score_whole_gpu_set(topology, chosen, free).key() == objective_key(topology, chosen, free)


# Fractions -------------------------------------------------------------------
def test_fraction_best_fit_then_lowest_index() -> None:
    topology = load("dgx-a100.toml")
    free = {0: D("1"), 1: D("0.5"), 2: D("0.3"), 3: D("0.3"), 4: D("1")}
    assert pick_gpu_fraction(topology, free, D("0.3")) == {2: D("0.3")}
    assert pick_gpu_fraction(topology, free, D("0.4")) == {1: D("0.4")}
    assert pick_gpu_fraction(topology, free, D("0.6")) == {0: D("0.6")}
    assert pick_gpu_fraction(topology, free, D("1.0")) == {0: D("1.0")}
    assert pick_gpu_fraction(topology, {0: D("0.2")}, D("0.5")) is None


def test_fraction_above_one_is_whole_gpus_plus_a_well_connected_remainder() -> None:
    topology = load("dgx1-v100.toml")
    free = {i: D(1) for i in (0, 3, 4)} | {1: D("0.6"), 7: D("0.9")}
    allocation = pick_gpu_fraction(topology, free, D("2.5"))
    # Whole: the NV2 pair among the fully free GPUs; remainder next to both.
    whole = sorted(i for i, share in allocation.items() if share == 1)
    assert sum(allocation.values()) == D("2.5") and len(whole) == 2
    assert topology.link(*whole) == "NV2"
    (rest,) = [i for i, share in allocation.items() if share == D("0.5")]
    assert all(topology.link(rest, w).startswith("NV") for w in whole)
    assert pick_gpu_fraction(topology, free, D("3")) == {0: 1, 3: 1, 4: 1}
    assert pick_gpu_fraction(topology, free, D("3.95")) is None


def test_fraction_quantum_is_enforced() -> None:
    topology = load("mock-2gpu.toml")
    for bad in (D("0"), D("-0.5"), D("0.005")):
        with pytest.raises(InvalidRequest):
            pick_gpu_fraction(topology, {0: D(1)}, bad)


# CPU cores --------------------------------------------------------------------
NUMA_OF = {core: core // 4 for core in range(12)}  # nodes 0, 1, 2 with 4 cores each


def test_cores_from_the_preferred_node_first() -> None:
    assert pick_cpu_cores(frozenset(range(12)), NUMA_OF, [1], 3) == ((4, 5, 6), False)
    assert pick_cpu_cores(frozenset(range(12)), NUMA_OF, [2, 0], 6) == ((0, 1, 8, 9, 10, 11), False)


def test_cores_spill_to_the_fullest_other_node() -> None:
    free = frozenset({4, 5, 0, 8, 9, 10})
    assert pick_cpu_cores(free, NUMA_OF, [1], 4) == ((4, 5, 8, 9), True)
    assert pick_cpu_cores(free, NUMA_OF, [], 2) == ((8, 9), False)
    assert pick_cpu_cores(free, NUMA_OF, [1], 7) is None
    assert pick_cpu_cores(free, NUMA_OF, [1], 0) == ((), False)
    assert pick_cpu_cores(frozenset({0, 50}), NUMA_OF, [0], 2) == ((0, 50), True)


# Node state ---------------------------------------------------------------------
def test_node_state_allocate_release_and_wire() -> None:
    state = GpuNodeState(load("dgx1-v100.toml"))
    whole = state.allocate_whole(2)
    part = state.allocate_fraction(D("0.25"))
    assert whole is not None and part is not None
    assert state.used() == D("2.25")
    assert set(part).isdisjoint(whole)
    copy = GpuNodeState.from_json(state.topology, state.to_json())
    assert copy.free_shares == state.free_shares
    assert state.allocate_whole(7) is None and state.used() == D("2.25")
    state.release(whole)
    state.release(part)
    assert state.fully_free() == ALL8 and state.used() == 0


def test_node_state_refuses_overcommit_and_double_release() -> None:
    state = GpuNodeState(load("mock-2gpu.toml"), {0: D("0.5")})
    with pytest.raises(Conflict):
        state.reserve({0: D("0.6")})
    with pytest.raises(Conflict):
        state.release({1: D("0.1")})
    with pytest.raises(InvalidRequest):
        state.reserve({5: D("0.1")})
    with pytest.raises(InvalidRequest):
        state.reserve({0: D("0.001")})
    with pytest.raises(InvalidRequest):
        GpuNodeState(load("mock-2gpu.toml"), {0: D("1.5")})
    state.reserve({0: D("0.5")})
    assert state.free_shares == {0: D(0), 1: D(1)}
