"""Property tests over every shipped topology (hypothesis)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.common.gpu.allocator import pick_cpu_cores, pick_whole_gpus
from corral.common.gpu.node_state import GpuNodeState
from corral.common.gpu.topology import GpuTopology

from .oracle import exhaustive_pick_whole_gpus
from .topologies import TOPOLOGY_FILES, load

TOPOLOGIES = {path.stem: load(path.name) for path in TOPOLOGY_FILES}
# The oracle enumerates every subset: keep free sets small enough on 16 GPUs.
ORACLE_MAX_FREE = 11
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

topology_names = pytest.mark.parametrize("name", sorted(TOPOLOGIES))


@st.composite
def free_set_and_count(draw: st.DrawFn, topology: GpuTopology) -> tuple[frozenset[int], int]:
    n = topology.device_count
    free = draw(st.sets(st.integers(0, n - 1), max_size=min(n, ORACLE_MAX_FREE)))
    count = draw(st.integers(0, len(free) + 1))
    return frozenset(free), count


@topology_names
@SETTINGS
@given(data=st.data())
def test_whole_gpu_choice_is_optimal_against_exhaustive_search(name: str, data: st.DataObject) -> None:
    topology = TOPOLOGIES[name]
    free, count = data.draw(free_set_and_count(topology))
    assert pick_whole_gpus(topology, free, count) == exhaustive_pick_whole_gpus(topology, free, count)


# Random request/release sequences ----------------------------------------------
# An operation: ("whole", count), ("share", hundredths) or ("release", which).
operations = st.lists(
    st.one_of(
        st.tuples(st.just("whole"), st.integers(1, 5)),
        st.tuples(st.just("share"), st.integers(1, 250)),
        st.tuples(st.just("release"), st.integers(0, 1000)),
    ),
    max_size=30,
)


@topology_names
@SETTINGS
@given(ops=operations)
def test_request_release_sequences_keep_the_books_exact(name: str, ops: list[tuple[str, int]]) -> None:
    topology = TOPOLOGIES[name]
    state = GpuNodeState(topology)
    n = topology.device_count
    held: list[dict[int, Decimal]] = []
    for kind, amount in ops:
        if kind == "release":
            if held:
                state.release(held.pop(amount % len(held)))
        elif kind == "whole":
            fully_free = state.fully_free()
            allocation = state.allocate_whole(amount)
            if allocation is None:
                assert len(fully_free) < amount
                continue
            assert len(allocation) == amount and set(allocation.values()) == {Decimal(1)}
            assert allocation.keys() <= fully_free
            if len(fully_free) <= ORACLE_MAX_FREE:
                assert tuple(sorted(allocation)) == exhaustive_pick_whole_gpus(topology, fully_free, amount)
            held.append(allocation)
        else:
            share = Decimal(amount) / 100
            before = state.free_shares
            allocation = state.allocate_fraction(share)
            if allocation is None:
                if share <= 1:
                    assert max(before.values()) < share
                continue
            assert sum(allocation.values()) == share
            if share <= 1:
                assert len(allocation) == 1
                (device,) = allocation
                fitting = [free for free in before.values() if free >= share]
                assert before[device] == min(fitting)  # best fit
            else:
                assert sum(1 for v in allocation.values() if v == 1) == int(share)
            assert all(before[i] >= taken for i, taken in allocation.items())
            held.append(allocation)
        # Never over-allocated, and every share is accounted for, exactly.
        free = state.free_shares
        assert all(Decimal(0) <= v <= Decimal(1) for v in free.values())
        assert sum(free.values()) + sum(sum(a.values()) for a in held) == n
    for allocation in held:
        state.release(allocation)
    assert state.free_shares == {i: Decimal(1) for i in range(n)}


@settings(max_examples=60, deadline=None)
@given(
    free=st.sets(st.integers(0, 31), max_size=32),
    preferred=st.lists(st.integers(0, 3), max_size=3, unique=True),
    count=st.integers(0, 33),
)
def test_cores_come_from_preferred_nodes_unless_they_run_out(free: set[int], preferred: list[int], count: int) -> None:
    numa_of = {core: core // 8 for core in range(32)}
    result = pick_cpu_cores(frozenset(free), numa_of, preferred, count)
    if count > len(free):
        assert result is None
        return
    assert result is not None
    cores, spilled = result
    assert len(cores) == count and set(cores) <= free and list(cores) == sorted(set(cores))
    available_preferred = [c for c in free if numa_of[c] in preferred]
    outside = [c for c in cores if numa_of[c] not in preferred]
    assert spilled == bool(outside and preferred)
    if outside:
        assert set(available_preferred) <= set(cores)  # spilled only after using them all
