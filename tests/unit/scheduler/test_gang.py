"""Gang placement of cluster sessions in the planner (pure: no database): all N kernels in one pass or
none, single-node on one node, multi-node one kernel per distinct node; a gang that waits takes nothing
and, at the head, reserves for its whole gang. Also the multi-node reservation and port blocks."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.common.allocator import NodeState
from corral.common.cluster import PORT_BLOCK, PORT_RANGE
from corral.common.gpu.topo_parser import load_topology_file
from corral.common.node_resources import Allocation, NodeCapacity
from corral.common.slots import ResourceSlot
from corral.manager.scheduler.backfill import HeadReservation, plan_reservation
from corral.manager.scheduler.candidates import GroupCandidates
from corral.manager.scheduler.gang import ever_fits, fits_all, gang_request, place_gang
from corral.manager.scheduler.groups import GroupSettings
from corral.manager.scheduler.node_view import NodeView
from corral.manager.scheduler.pending import PendingSession
from corral.manager.scheduler.planner import PassPlan, PlanInputs, Planner
from corral.manager.scheduler.ports import block_of, pick_block
from corral.manager.scheduler.simulation import _run

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
TOPOLOGIES = Path(__file__).resolve().parents[3] / "configs" / "gpus"
BACKFILL = GroupSettings("default", "fifo", True, False, (("topology", 1.0),))
STRICT = GroupSettings("default", "fifo", False, False, (("topology", 1.0),))
GIB = 1 << 30


def cpus(n: float, mem: int = GIB) -> ResourceSlot:
    return ResourceSlot({"cpu": n, "mem": mem})


def node(name: str, order: int = 0, cores: int = 8, mem: int = 16 * GIB) -> NodeView:
    capacity = NodeCapacity(tuple(range(cores)), mem, {c: 0 for c in range(cores)})
    return NodeView(name, name, "default", T0 + timedelta(seconds=order), NodeState(capacity))


def gpu_node(name: str, order: int = 0) -> NodeView:
    cores = tuple(range(16))
    topology = load_topology_file(TOPOLOGIES / "workstation-4gpu-nvlink-pairs.toml").to_json()
    return NodeView(name, name, "default", T0 + timedelta(seconds=order),
                    NodeState(NodeCapacity(cores, 64 * GIB, {c: 0 for c in cores}, topology)))


def sess(sid: str, request: ResourceSlot, size: int = 1, mode: str = "single-node", order: int = 0) -> PendingSession:
    """Queued in ``order`` (fifo: lower first)."""
    return PendingSession(sid, "u", None, "batch", request, size, "default", T0 + timedelta(microseconds=order),
                          50, "", mode)


@dataclass
class Snapshot:
    cpu_used: Decimal
    mem_used: int
    pinned: frozenset[int]
    free: ResourceSlot


def snapshot(view: NodeView) -> Snapshot:
    state = view.state
    return Snapshot(state.cpu_used, state.mem_used, frozenset(state.pinned_cores), state.free_slots())


class Cluster:
    """Nodes, the sessions running on them (with their expected ends), as a pass's inputs."""

    def __init__(self, *nodes: NodeView) -> None:
        self.nodes = list(nodes)
        self.holding: dict[str, list[tuple[str, Allocation]]] = {}
        self.ends: dict[str, float] = {}

    def view(self, name: str) -> NodeView:
        return next(v for v in self.nodes if v.agent_id == name)

    def run(self, sid: str, on: str, request: ResourceSlot, ends_in_s: float = 3600.0) -> Allocation:
        target = self.view(on)
        allocation = target.state.try_allocate(request)
        assert allocation is not None, f"{sid} does not fit on {on}"
        target.state.add(allocation)
        self.holding.setdefault(on, []).append((sid, allocation))
        self.ends[sid] = T0.timestamp() + ends_in_s
        return allocation

    def plan(self, pending: list[PendingSession], group: GroupSettings = BACKFILL,
             new_ends_in_s: float = 3600.0) -> PassPlan:
        async def ends_for(running: list[str], new: list[str]) -> Mapping[str, float]:
            return {**{sid: self.ends[sid] for sid in running if sid in self.ends},
                    **{sid: T0.timestamp() + new_ends_in_s for sid in new}}

        inputs = PlanInputs(T0, pending, self.nodes, {"default": group}, {}, {}, {}, self.holding)
        return _run(Planner(inputs, ends_for).plan())

    def snapshots(self) -> dict[str, Snapshot]:
        return {v.agent_id: snapshot(v) for v in self.nodes}


def placed(plan: PassPlan) -> dict[str, list[tuple[str, Allocation]]]:
    """Session id -> its kernels' (agent, allocation), by cluster index."""
    return {s.id: [(k.node.agent_id, k.allocation) for k in cand.kernels] for s, cand in plan.choices}


# -- single-node gangs --------------------------------------------------------------------------------


def test_a_single_node_gang_takes_one_node_with_all_its_kernels() -> None:
    cluster = Cluster(node("a", 0), node("b", 1))
    plan = cluster.plan([sess("g", cpus(2), size=3)])
    (kernels,) = placed(plan).values()
    assert len(kernels) == 3
    assert {agent for agent, _ in kernels} == {"a"}
    # Three distinct allocations, each with its own pinned cores, all taken on the node.
    cores = [set(a.cpu_cores) for _, a in kernels]
    assert all(len(c) == 2 for c in cores) and len(set().union(*cores)) == 6
    assert cluster.view("a").state.cpu_used == 6
    assert cluster.view("b").state.cpu_used == 0
    assert plan.choices[0][1].agent_ids == ["a"]
    assert "g" not in plan.reasons


def test_a_single_node_gang_skips_a_node_that_fits_only_part_of_it() -> None:
    cluster = Cluster(node("a", 0), node("b", 1))
    cluster.run("r", "a", cpus(4))  # a has room for 2 kernels of 2 cores, not 3
    plan = cluster.plan([sess("g", cpus(2), size=3)])
    assert {agent for agent, _ in placed(plan)["g"]} == {"b"}
    assert cluster.view("a").state.cpu_used == 4  # nothing of the gang left on a


def test_a_fragmented_node_is_set_aside_for_the_next_one() -> None:
    """The whole gang's request (GPU shares stay per kernel) fits a, but its three 0.5 shares do not (a has
    one GPU with 1.0 free): a is tried, given back in full, and b takes the gang."""
    a, b = gpu_node("a", 0), gpu_node("b", 1)
    cluster = Cluster(a, b)
    cluster.run("r", "a", ResourceSlot({"cpu": 1, "mem": GIB, "cuda.device": 3}))
    before = snapshot(a)
    request = ResourceSlot({"cpu": 1, "mem": GIB, "cuda.shares": Decimal("0.5")})
    assert gang_request(request, 3)["cuda.shares"] == Decimal("0.5")
    assert a.state.try_allocate(gang_request(request, 3)) is not None  # a looks fine for the whole request
    plan = cluster.plan([sess("g", request, size=3)])
    assert {agent for agent, _ in placed(plan)["g"]} == {"b"}
    assert snapshot(a) == before


def test_a_gang_that_does_not_fit_now_takes_nothing_and_reserves_one_node_for_all_its_kernels() -> None:
    cluster = Cluster(node("a", 0), node("b", 1))
    cluster.run("ra", "a", cpus(4), ends_in_s=3600)
    cluster.run("rb", "b", cpus(4), ends_in_s=1800)
    before = cluster.snapshots()
    plan = cluster.plan([sess("g", cpus(2), size=3)])  # 6 cores on one node: neither has them now
    assert not plan.choices
    assert cluster.snapshots() == before
    assert plan.reasons["g"].startswith("waiting for resources: group 'default' has no room for 3 kernels of ")
    assert "on one node" in plan.reasons["g"]
    assert "head of the queue: agent b reserved from about" in plan.reasons["g"]
    head = plan.reservations["default"]
    assert isinstance(head, HeadReservation)
    assert (head.session_id, head.agent_id, head.count, head.others) == ("g", "b", 3, ())
    assert head.start_ts == T0.timestamp() + 1800
    assert head.agent_ids == ["b"]


def test_a_later_session_keeps_off_the_node_reserved_for_a_gang() -> None:
    cluster = Cluster(node("a", 0), node("b", 1))
    cluster.run("ra", "a", cpus(8), ends_in_s=3600)  # a is full
    cluster.run("rb", "b", cpus(4), ends_in_s=1800)
    gang = sess("g", cpus(2), size=3, order=0)
    # 3 free cores of b's 4 would leave 5 once rb ends: the gang (6) would be delayed. It waits.
    small = sess("small", cpus(3), order=1)
    plan = cluster.plan([gang, small])
    assert not plan.choices
    assert "may not delay the head of the queue's reservation" in plan.reasons["small"]
    assert plan.reservations["default"].session_id == "g"
    # One that leaves the gang its 6 cores once rb ends may start there now.
    tiny = sess("tiny", cpus(2), order=1)
    plan = cluster.plan([gang, tiny])
    assert placed(plan) == {"tiny": [("b", placed(plan)["tiny"][0][1])]}


def test_strict_order_holds_everything_behind_a_waiting_gang() -> None:
    cluster = Cluster(node("a", 0))
    cluster.run("r", "a", cpus(4))
    plan = cluster.plan([sess("g", cpus(2), size=3, order=0), sess("small", cpus(1), order=1)], STRICT)
    assert not plan.choices
    assert "(head of the queue)" in plan.reasons["g"]
    assert plan.reasons["small"].startswith("behind session g at the head of the queue")


def test_a_single_node_gang_no_node_could_ever_hold_gets_the_could_never_fit_reason() -> None:
    cluster = Cluster(node("a", 0), node("b", 1))
    plan = cluster.plan([sess("g", cpus(3), size=3)])  # 9 cores on one node of 8
    assert not plan.choices
    assert plan.reasons["g"] == ("resource group 'default' could never fit 3 kernels of cpu=3, mem=1.0 GiB on one node; "
                                 "it waits for more or larger nodes to join")
    assert "default" not in plan.reservations


# -- multi-node gangs --------------------------------------------------------------------------------


def test_a_multi_node_gang_puts_each_kernel_on_a_distinct_node() -> None:
    cluster = Cluster(node("a", 0), node("b", 1), node("c", 2), node("d", 3))
    plan = cluster.plan([sess("g", cpus(2), size=3, mode="multi-node")])
    kernels = placed(plan)["g"]
    assert len(kernels) == 3
    assert len({agent for agent, _ in kernels}) == 3
    assert plan.choices[0][1].agent_ids == sorted(agent for agent, _ in kernels)
    for agent, allocation in kernels:
        assert cluster.view(agent).state.cpu_used == allocation.cpu == 2
    # Even where one node could hold them all, multi-node never doubles up.
    one = Cluster(node("a", 0), node("b", 1))
    plan = one.plan([sess("g", cpus(1), size=3, mode="multi-node")])
    assert not plan.choices
    assert "could never fit 3 kernels of cpu=1, mem=1.0 GiB on 3 different nodes" in plan.reasons["g"]
    assert one.view("a").state.cpu_used == one.view("b").state.cpu_used == 0


def test_a_multi_node_gang_placed_part_way_gives_everything_back() -> None:
    """Two nodes have room, the third does not: the two kernels placed are released, nothing is held."""
    cluster = Cluster(node("a", 0), node("b", 1), node("c", 2))
    cluster.run("rc", "c", cpus(7), ends_in_s=600)
    before = cluster.snapshots()
    plan = cluster.plan([sess("g", cpus(2), size=3, mode="multi-node")])
    assert not plan.choices
    assert cluster.snapshots() == before
    assert plan.reasons["g"].startswith("waiting for resources: group 'default' has no room for 3 kernels")
    head = plan.reservations["default"]
    assert head.session_id == "g" and sorted(head.agent_ids) == ["a", "b", "c"]
    assert head.start_ts == T0.timestamp() + 600
    assert all(part.count == 1 for part in (head, *head.others))
    assert "head of the queue: agents " in plan.reasons["g"]


def test_a_multi_node_reservation_keeps_later_sessions_off_its_nodes_only() -> None:
    cluster = Cluster(node("a", 0), node("b", 1), node("c", 2), node("d", 3))
    for name, end in (("a", 100), ("b", 200), ("c", 300), ("d", 400)):
        cluster.run(f"r{name}", name, cpus(5), ends_in_s=end)
    gang = sess("g", cpus(6), size=3, mode="multi-node", order=0)
    small = sess("small", cpus(3), order=1)  # fits any node now (3 free), but would delay the gang on a, b, c
    plan = cluster.plan([gang, small])
    head = plan.reservations["default"]
    assert head.agent_ids == ["a", "b", "c"]
    assert head.start_ts == T0.timestamp() + 300  # the latest of the three earliest nodes
    assert [(agent, a.cpu) for agent, a in placed(plan)["small"]] == [("d", 3)]


def test_ever_fits_counts_nodes_for_multi_node_and_one_node_for_single_node() -> None:
    states = [node(n, i).state for i, n in enumerate("abc")]
    assert ever_fits(states, cpus(8), 3, "multi-node")
    assert not ever_fits(states, cpus(8), 4, "multi-node")
    assert not ever_fits(states, cpus(8), 2, "single-node")
    assert ever_fits(states, cpus(4), 2, "single-node")
    assert ever_fits(states, cpus(8), 1, "single-node")
    assert not ever_fits(states, cpus(9), 1, "single-node")
    # Whatever is running now does not count.
    busy = node("x").state
    busy.add(busy.try_allocate(cpus(8)))  # type: ignore[arg-type]
    assert ever_fits([busy], cpus(4), 2, "single-node")


def test_fits_all_leaves_nothing_taken_when_the_last_kernel_does_not_fit() -> None:
    view = node("a")
    before = snapshot(view)
    assert fits_all(view.state, cpus(3), 3) is None
    assert snapshot(view) == before
    taken = fits_all(view.state, cpus(2), 4, with_cores=True)
    assert taken is not None and len(taken) == 4 and view.state.cpu_used == 8


def test_place_gang_respects_the_allowed_check_for_the_whole_gang() -> None:
    """The reservation check of a single-node gang sees the gang's other kernels taken."""
    a, b = node("a", 0), node("b", 1)
    candidates = GroupCandidates([a, b], BACKFILL.plan())
    # The head wants 4 cores on a at some point: a gang of 3 × 2 leaves it only 2, one kernel alone 6.
    head = HeadReservation("head", "a", T0.timestamp() + 60, cpus(4), [])
    chosen = place_gang(candidates, cpus(2), 3, "single-node", lambda n, alloc: head.allows(n, alloc, None))
    assert chosen is not None and chosen.agent_ids == ["b"]
    assert a.state.cpu_used == 0 and b.state.cpu_used == 6


# -- the property -----------------------------------------------------------------------------------

node_shapes = st.lists(st.tuples(st.integers(2, 8), st.integers(2, 16)), min_size=1, max_size=5)
session_shapes = st.lists(
    st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 4), st.sampled_from(["single-node", "multi-node"])),
    min_size=1, max_size=12,
)
running_shapes = st.lists(st.tuples(st.integers(0, 4), st.integers(1, 4), st.integers(60, 7200)), max_size=6)


@settings(max_examples=120, deadline=None, derandomize=True)
@given(node_shapes, session_shapes, running_shapes, st.booleans())
def test_gangs_are_placed_whole_or_not_at_all(
    nodes: list[tuple[int, int]], sessions: list[tuple[int, int, int, str]], running: list[tuple[int, int, int]],
    backfill: bool,
) -> None:
    """After a pass: every placed session has exactly cluster_size kernels placed (multi-node ones on
    distinct nodes, single-node ones on one node), no node is over capacity, and the nodes hold exactly
    what ran before plus what was placed: sessions left waiting took nothing."""
    cluster = Cluster(*(node(f"n{i}", i, cores, mem * GIB) for i, (cores, mem) in enumerate(nodes)))
    for j, (where, cpu, end) in enumerate(running):
        target = cluster.nodes[where % len(cluster.nodes)]
        if target.state.try_allocate(cpus(cpu)) is not None:
            cluster.run(f"r{j}", target.agent_id, cpus(cpu), ends_in_s=end)
    before = cluster.snapshots()
    pending = [sess(f"s{i:02d}", cpus(cpu, mem * GIB), size, mode, order=i)
               for i, (cpu, mem, size, mode) in enumerate(sessions)]
    group = GroupSettings("default", "fifo", backfill, False, (("topology", 1.0),))
    plan = cluster.plan(pending, group)

    by_id = {s.id: s for s in pending}
    added: dict[str, list[Allocation]] = {v.agent_id: [] for v in cluster.nodes}
    for placed_sess, cand in plan.choices:
        kernels = cand.kernels
        assert len(kernels) == placed_sess.cluster_size
        agents = [k.node.agent_id for k in kernels]
        if placed_sess.cluster_size > 1 and placed_sess.cluster_mode == "multi-node":
            assert len(set(agents)) == placed_sess.cluster_size
        else:
            assert len(set(agents)) == 1
        for k in kernels:
            assert k.allocation.cpu == by_id[placed_sess.id].request["cpu"]
            added[k.node.agent_id].append(k.allocation)
    assert len({s.id for s, _ in plan.choices}) == len(plan.choices)
    for view in cluster.nodes:
        state, was = view.state, before[view.agent_id]
        mine = added[view.agent_id]
        assert state.cpu_used == was.cpu_used + sum((a.cpu for a in mine), Decimal(0))
        assert state.mem_used == was.mem_used + sum(a.mem for a in mine)
        pinned = [c for a in mine for c in a.cpu_cores]
        assert len(pinned) == len(set(pinned)) and not set(pinned) & was.pinned
        assert frozenset(state.pinned_cores) == was.pinned | set(pinned)
        assert state.cpu_used <= len(state.capacity.cpu_cores)
        assert state.mem_used <= state.capacity.mem
    for s in pending:
        if s.id not in {p.id for p, _ in plan.choices}:
            assert s.id in plan.reasons  # every waiting session says why


# -- reservations for multi-node gangs, directly --------------------------------------------------


def test_plan_reservation_for_a_multi_node_gang_starts_at_the_latest_of_the_earliest_nodes() -> None:
    views = [node(n, i) for i, n in enumerate("abcd")]
    endings: dict[str, list[tuple[float, Allocation]]] = {}
    for view, end in zip(views, (500.0, 100.0, 900.0, 300.0)):
        allocation = view.state.try_allocate(cpus(6))
        assert allocation is not None
        view.state.add(allocation)
        endings[view.agent_id] = [(end, allocation)]
    before = {v.agent_id: snapshot(v) for v in views}
    reservation = plan_reservation("g", cpus(4), views, endings, 0.0, size=3, mode="multi-node")
    assert reservation is not None
    # b (100), d (300), a (500): the three that free up first, from the latest of them.
    assert reservation.agent_ids == ["b", "d", "a"]
    assert {p.session_id for p in (reservation, *reservation.others)} == {"g"}
    assert {p.start_ts for p in (reservation, *reservation.others)} == {500.0}
    for part in (reservation, *reservation.others):
        assert part.count == 1 and part.request == cpus(4)
        assert part.frees_by_start == [endings[part.agent_id][0][1]]
    assert {v.agent_id: snapshot(v) for v in views} == before  # planning takes nothing
    # Nodes that already have room count from now.
    views.append(node("e", 5))
    reservation = plan_reservation("g", cpus(4), views, endings, 0.0, size=3, mode="multi-node")
    assert reservation is not None and reservation.agent_ids == ["e", "b", "d"] and reservation.start_ts == 300.0
    # Fewer nodes than kernels: never.
    assert plan_reservation("g", cpus(4), views[:2], endings, 0.0, size=3, mode="multi-node") is None


def test_plan_reservation_for_a_single_node_gang_wants_all_its_kernels_on_one_node() -> None:
    a, b = node("a", 0), node("b", 1)
    endings: dict[str, list[tuple[float, Allocation]]] = {}
    for view, sizes_ends in ((a, [(2, 100.0), (2, 700.0)]), (b, [(4, 400.0)])):
        for n, end in sizes_ends:
            allocation = view.state.try_allocate(cpus(n))
            assert allocation is not None
            view.state.add(allocation)
            endings.setdefault(view.agent_id, []).append((end, allocation))
    # 3 × 2 cores: a has 4 free, 6 once its first session ends (100); b 8 at 400.
    reservation = plan_reservation("g", cpus(2), [a, b], endings, 0.0, size=3)
    assert reservation is not None
    assert (reservation.agent_id, reservation.start_ts, reservation.count) == ("a", 100.0, 3)
    # 4 × 2 cores: a needs both its sessions gone (700), b only one (400).
    reservation = plan_reservation("g", cpus(2), [a, b], endings, 0.0, size=4)
    assert reservation is not None and (reservation.agent_id, reservation.start_ts) == ("b", 400.0)
    assert plan_reservation("g", cpus(2), [a, b], endings, 0.0, size=5) is None


# -- port blocks ----------------------------------------------------------------------------------


def test_pick_block_gives_the_lowest_block_free_on_every_node_and_takes_it() -> None:
    low = PORT_RANGE[0]
    used: dict[str, set[int]] = {"a": {low}, "b": {low + PORT_BLOCK}}
    assert pick_block(used, ["a", "b"]) == low + 2 * PORT_BLOCK
    assert used == {"a": {low, low + 2 * PORT_BLOCK}, "b": {low + PORT_BLOCK, low + 2 * PORT_BLOCK}}
    assert pick_block(used, ["a", "c"]) == low + PORT_BLOCK  # b's block does not matter to a and c
    assert used["c"] == {low + PORT_BLOCK}
    assert pick_block(used, ["b"]) == low
    # Two sessions on the same nodes in one reservation never share a block.
    first, second = pick_block(used, ["a", "b"]), pick_block(used, ["a", "b"])
    assert first is not None and second is not None and first != second


def test_pick_block_covers_the_range_exactly_then_says_none() -> None:
    used: dict[str, set[int]] = {}
    blocks = [pick_block(used, ["a"]) for _ in range(256)]
    assert blocks[0] == PORT_RANGE[0]
    assert blocks[-1] == PORT_RANGE[1] - PORT_BLOCK + 1  # the last block ends on the range's last port
    assert len(set(blocks)) == 256 and None not in blocks
    assert all((b - PORT_RANGE[0]) % PORT_BLOCK == 0 for b in blocks)  # type: ignore[operator]
    assert pick_block(used, ["a"]) is None
    assert pick_block(used, ["b"]) == PORT_RANGE[0]
    before = {k: set(v) for k, v in used.items()}
    assert pick_block(used, ["a", "b"]) is None
    assert used == before  # nothing taken when no block is free everywhere
    assert pick_block({}, ["a"], (1000, 1000 + PORT_BLOCK - 2)) is None  # a range smaller than a block
    assert pick_block({}, ["a"], (1000, 1000 + PORT_BLOCK - 1)) == 1000


@pytest.mark.parametrize("allocation, expected", [
    (None, None), ({}, None), ({"ports": None}, None), ({"ports": {"count": 16}}, None),
    ({"cpu": "1", "ports": {"base": 28688, "count": 16}}, 28688), ({"ports": {"base": "28704"}}, 28704),
])
def test_block_of_reads_the_allocation_record(allocation: dict | None, expected: int | None) -> None:
    assert block_of(allocation) == expected
