"""Preemption in the planner: which running sessions it picks (lowest priority, then the latest started,
as few as needed, never interactive ones or equal/higher priorities), what the pass does meanwhile, and
the simulation with preemption on."""
from __future__ import annotations

import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Mapping

from corral.common.allocator import NodeState
from corral.common.gpu.topo_parser import load_topology_file
from corral.common.node_resources import Allocation, NodeCapacity
from corral.common.slots import ResourceSlot
from corral.manager.db.models import ResourcePolicy
from corral.manager.quotas import HeldPolicy, Holder
from corral.manager.scheduler.groups import GroupSettings
from corral.manager.scheduler.node_view import NodeView
from corral.manager.scheduler.pending import PendingSession
from corral.manager.scheduler.planner import PassPlan, PlanInputs, Planner
from corral.manager.scheduler.preempt import ActiveSession, choose_victims
from corral.manager.scheduler.simulation import Job, Simulation, _run, make_nodes

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
TOPOLOGIES = Path(__file__).resolve().parents[3] / "configs" / "gpus"
ON = GroupSettings("default", "fifo", True, True, (("topology", 1.0),))
OFF = GroupSettings("default", "fifo", True, False, (("topology", 1.0),))
STRICT = GroupSettings("default", "fifo", False, True, (("topology", 1.0),))


def cpus(n: int) -> ResourceSlot:
    return ResourceSlot({"cpu": n, "mem": 1 << 30})


def node(name: str, order: int = 0) -> NodeView:
    capacity = NodeCapacity(tuple(range(8)), 16 << 30, {c: 0 for c in range(8)})
    return NodeView(name, name, "default", T0 + timedelta(seconds=order), NodeState(capacity))


def waiting(sid: str, n: int, priority: int = 50, age_s: float = 0.0, kind: str = "batch") -> PendingSession:
    return PendingSession(sid, "u", None, kind, cpus(n), 1, "default", T0 - timedelta(seconds=age_s), priority, "")


class Cluster:
    """Nodes with sessions holding them, as a pass's inputs."""

    def __init__(self, *names: str) -> None:
        self.nodes = [node(name, i) for i, name in enumerate(names)]
        self.holding: dict[str, list[tuple[str, Allocation]]] = {}
        self.active: dict[str, ActiveSession] = {}
        self.ends: dict[str, float] = {}

    def run(self, sid: str, on: str, n: int, priority: int, *, kind: str = "batch", started_s: float = -600.0,
            status: str = "RUNNING", ends_in_s: float = 3600.0) -> None:
        target = next(v for v in self.nodes if v.agent_id == on)
        allocation = target.state.try_allocate(cpus(n))
        assert allocation is not None, f"{sid} does not fit on {on}"
        target.state.add(allocation)
        self.holding.setdefault(on, []).append((sid, allocation))
        self.active[sid] = ActiveSession(sid, kind, status, priority, T0 + timedelta(seconds=started_s))
        self.ends[sid] = T0.timestamp() + ends_in_s

    def plan(self, pending: list[PendingSession], settings: GroupSettings = ON,
             held: Mapping[tuple[str, str | None], list[HeldPolicy]] | None = None) -> PassPlan:
        async def ends_for(running: list[str], new: list[str]) -> Mapping[str, float]:
            return {**{sid: self.ends[sid] for sid in running if sid in self.ends},
                    **{sid: T0.timestamp() + 3600.0 for sid in new}}

        inputs = PlanInputs(T0, pending, self.nodes, {"default": settings}, held or {}, {}, {}, self.holding,
                            active=self.active)
        return _run(Planner(inputs, ends_for).plan())

    def free(self, name: str) -> ResourceSlot:
        return next(v for v in self.nodes if v.agent_id == name).state.free_slots()


def victims(plan: PassPlan) -> list[tuple[str, str]]:
    return [(victim, agent) for victim, agent, _ in plan.preemptions]


def test_the_lowest_priority_then_the_most_recently_started_and_no_more_than_needed() -> None:
    cluster = Cluster("a")
    cluster.run("old-10", "a", 2, 10, started_s=-7200)
    cluster.run("new-10", "a", 2, 10, started_s=-60)
    cluster.run("p20", "a", 2, 20, started_s=-30)
    cluster.run("p40", "a", 2, 40)
    before = cluster.free("a")
    plan = cluster.plan([waiting("s", 4)])
    # 4 cores are needed: the two priority-10 ones go; p20 (newest of all) and p40 are spared.
    assert sorted(victims(plan)) == [("new-10", "a"), ("old-10", "a")]
    assert plan.preemptions[0][2].startswith("preempted by session s (priority 50 > 10)")
    assert cluster.free("a") == before  # the victims still hold their resources in this pass
    assert not plan.choices
    assert plan.reasons["s"].startswith("waiting for preempted sessions ")
    assert "head of the queue: agent a" in plan.reasons["s"]
    assert plan.reservations["default"].session_id == "s"

    cluster = Cluster("a")
    cluster.run("old-10", "a", 2, 10, started_s=-7200)
    cluster.run("new-10", "a", 2, 10, started_s=-60)
    cluster.run("rest", "a", 4, 40)
    assert victims(cluster.plan([waiting("s", 2)])) == [("new-10", "a")]  # the least work lost


def test_victims_no_longer_needed_are_spared() -> None:
    """Greedy by priority would take the small priority-10 one and then the large priority-20 one; the
    large one alone is enough, so the small one is spared."""
    cluster = Cluster("a")
    cluster.run("small-10", "a", 1, 10)
    cluster.run("large-20", "a", 6, 20)
    cluster.run("other-60", "a", 1, 60)
    assert victims(cluster.plan([waiting("s", 6)])) == [("large-20", "a")]


def test_never_interactive_never_equal_or_higher_priority_and_never_when_off() -> None:
    cluster = Cluster("a")
    cluster.run("shell", "a", 4, 0, kind="interactive")
    cluster.run("equal", "a", 2, 50)
    cluster.run("higher", "a", 2, 70)
    plan = cluster.plan([waiting("s", 4)])
    assert not plan.preemptions
    assert "waiting for resources" in plan.reasons["s"]

    cluster = Cluster("a")
    cluster.run("low", "a", 6, 10)
    on, off = cluster.plan([waiting("s", 4)], ON), cluster.plan([waiting("s", 4)], OFF)
    assert victims(on) == [("low", "a")]
    assert not off.preemptions and "waiting for resources" in off.reasons["s"]
    bare = Cluster("a")  # sessions not in ``active`` (a group with preemption off): never victims
    bare.run("low", "a", 6, 10)
    bare.active.clear()
    assert not bare.plan([waiting("s", 4)]).preemptions


def test_a_session_held_back_by_its_quota_preempts_nothing() -> None:
    cluster = Cluster("a")
    cluster.run("low", "a", 6, 10)
    limit = ResourcePolicy(name="small", max_slots={"cpu": 2})
    held = {("u", None): [HeldPolicy(Holder("user", "u", "user quota"), limit)]}
    plan = cluster.plan([waiting("s", 4)], held=held)
    assert not plan.preemptions
    assert "waiting for resources" not in plan.reasons["s"]


def test_the_node_with_the_lowest_priority_victims_then_the_fewest() -> None:
    cluster = Cluster("a", "b", "c")
    cluster.run("a-30", "a", 6, 30)
    cluster.run("b-10", "b", 3, 10)
    cluster.run("b-20", "b", 3, 20)
    cluster.run("c-10-1", "c", 3, 10)
    cluster.run("c-10-2", "c", 3, 10)
    # a: one victim of 30; b: two, up to 20; c: two of 10 — c's highest victim priority is the lowest.
    assert sorted(victims(cluster.plan([waiting("s", 6)]))) == [("c-10-1", "c"), ("c-10-2", "c")]
    direct = choose_victims(cpus(6), 50, cluster.nodes, lambda a: cluster.holding.get(a, ()), cluster.active,
                            {"c-10-1"}, T0.timestamp())
    assert direct is not None and direct.agent_id == "b"  # c cannot do it without a claimed session

    cluster = Cluster("a", "b")
    cluster.run("a-10-1", "a", 3, 10)
    cluster.run("a-10-2", "a", 3, 10)
    cluster.run("b-10", "b", 6, 10)
    assert victims(cluster.plan([waiting("s", 6)])) == [("b-10", "b")]  # fewer victims


def test_two_waiting_sessions_never_count_on_the_same_victim_and_what_it_frees_stays_taken() -> None:
    cluster = Cluster("a", "b")
    cluster.run("a-low", "a", 6, 10)
    cluster.run("b-low", "b", 6, 10)
    plan = cluster.plan([waiting("s1", 6, age_s=20), waiting("s2", 6, age_s=10), waiting("t", 4, priority=5)])
    assert sorted(victims(plan)) == [("a-low", "a"), ("b-low", "b")]
    assert {v for v, _, r in plan.preemptions if "by session s1" in r} != {v for v, _, r in plan.preemptions
                                                                           if "by session s2" in r}
    assert not plan.choices  # "t" does not take what the victims will free
    assert "t" in plan.reasons and "waiting for preempted" not in plan.reasons["t"]


def test_sessions_already_going_away_are_waited_for_not_preempted_again() -> None:
    cluster = Cluster("a")
    cluster.run("leaving", "a", 6, 10, status="TERMINATING")
    cluster.run("low", "a", 2, 10)
    plan = cluster.plan([waiting("s", 6)])
    assert not plan.preemptions
    assert plan.reasons["s"].startswith("waiting for preempted sessions leaving to stop on agent a")

    # Another waiting session cannot count on the same one: it preempts what else it needs. ("head" holds
    # the head's reservation on "z", so both others look elsewhere.)
    cluster = Cluster("z", "a", "b")
    cluster.run("z-60", "z", 8, 60, ends_in_s=100)
    cluster.run("leaving", "a", 6, 10, status="TERMINATING")
    cluster.run("a-60", "a", 2, 60)
    cluster.run("low", "b", 6, 10)
    cluster.run("b-60", "b", 2, 60)
    plan = cluster.plan([waiting("head", 8, age_s=30), waiting("s1", 6, age_s=20), waiting("s2", 6, age_s=10)])
    assert plan.reservations["default"].agent_id == "z"
    assert plan.reasons["s1"] == "waiting for preempted sessions leaving to stop on agent a"
    assert victims(plan) == [("low", "b")] and "by session s2" in plan.preemptions[0][2]


def test_strict_order_the_preempting_session_blocks_those_behind_it() -> None:
    cluster = Cluster("a")
    cluster.run("low", "a", 6, 10)
    plan = cluster.plan([waiting("s", 8, age_s=10), waiting("small", 1, priority=50)], STRICT)
    assert victims(plan) == [("low", "a")]
    assert plan.reasons["s"].endswith("(head of the queue)")
    assert plan.reasons["small"].startswith("behind session s")
    assert not plan.choices


def test_never_on_the_node_another_head_has_reserved() -> None:
    cluster = Cluster("a", "b")
    cluster.run("a-60", "a", 2, 60, ends_in_s=100)
    cluster.run("a-10", "a", 6, 10, started_s=-10, ends_in_s=3600)
    cluster.run("b-10", "b", 6, 10, started_s=-5000, ends_in_s=3600)
    cluster.run("b-60", "b", 2, 60, ends_in_s=7200)
    # "head" needs a whole node: no preemption can do it (the priority-60 ones stay), so it reserves "a",
    # which frees first. "s" would rather preempt a-10 (less work lost) but "a" is the head's.
    plan = cluster.plan([waiting("head", 8, age_s=20), waiting("s", 6, age_s=10)])
    assert plan.reservations["default"].session_id == "head" and plan.reservations["default"].agent_id == "a"
    assert victims(plan) == [("b-10", "b")]


def gpu_node_capacity(gpus: int = 8) -> NodeCapacity:
    name = "dgx1-v100.toml" if gpus == 8 else "workstation-4gpu-nvlink-pairs.toml"
    cores = tuple(range(64))
    return NodeCapacity(cores, 512 << 30, {c: c // 32 for c in cores}, load_topology_file(TOPOLOGIES / name).to_json())


def gpu(n: int) -> ResourceSlot:
    return ResourceSlot({"cpu": 1, "mem": 1 << 30, "cuda.device": n})


def test_simulated_a_high_priority_job_starts_at_once_and_the_preempted_ones_start_over() -> None:
    fill = [Job(f"low{i}", "l", 0.0, 7200, gpu(4), priority=10) for i in range(4)]
    urgent = Job("urgent", "h", 100.0, 600, gpu(8), priority=50)
    on = Simulation(make_nodes([gpu_node_capacity(8)] * 2), ON).run(fill + [urgent], 48 * 3600.0)
    assert on.results["urgent"].start_s == 100.0
    preempted = [r for r in on.results.values() if r.preempted]
    assert len(preempted) == 2 and all(r.job.priority == 10 for r in preempted)
    # The two preempted jobs start over once the urgent one is done, and run their whole length again.
    assert all(r.start_s == 700.0 for r in preempted)
    off = Simulation(make_nodes([gpu_node_capacity(8)] * 2), OFF).run(fill + [urgent], 48 * 3600.0)
    assert off.results["urgent"].start_s == 7200.0
    assert not any(r.preempted for r in off.results.values())

    shells = [Job(f"shell{i}", "l", 0.0, 7200, gpu(4), priority=0, type="interactive") for i in range(4)]
    kept = Simulation(make_nodes([gpu_node_capacity(8)] * 2), ON).run(shells + [urgent], 48 * 3600.0)
    assert kept.results["urgent"].start_s == 7200.0 and not any(r.preempted for r in kept.results.values())


def test_simulated_preemptions_only_ever_take_lower_priority_batch_jobs() -> None:
    rng = random.Random(11)
    jobs = [
        Job(f"j{i:03d}", f"u{i % 3}", rng.uniform(0, 6 * 3600), rng.uniform(600, 7200), gpu(rng.choice([1, 2, 4, 8])),
            priority=rng.choice([0, 10, 30, 50, 50, 70]), type=rng.choice(["batch", "batch", "interactive"]))
        for i in range(150)
    ]
    by_id = {job.id: job for job in jobs}
    for policy in ("fifo", "drf", "fair-share"):
        settings = GroupSettings("default", policy, True, True, (("topology", 1.0),))
        sim = Simulation(make_nodes([gpu_node_capacity(8)] * 3), settings)
        result = sim.run(jobs, 30 * 24 * 3600.0)
        assert sim.preemptions, policy
        for _, victim, reason in sim.preemptions:
            found = re.fullmatch(r"preempted by session (\S+) \(priority (\d+) > (\d+)\)", reason)
            assert found is not None, reason
            by, high, low = by_id[found[1]], int(found[2]), int(found[3])
            assert by_id[victim].type == "batch" and by_id[victim].priority == low < high == by.priority
        assert all(r.start_s is not None for r in result.results.values()), policy  # every job gets to run


def test_the_session_preempted_for_gets_what_its_victims_freed_first() -> None:
    """Next pass, the victim is gone: under lifo a newer session of the same priority would come first and
    take the room (and the preemption would have to start over); the session preempted for goes first."""
    cluster = Cluster("a")
    cluster.run("other", "a", 2, 60)
    owed = PendingSession("owed", "u", None, "batch", cpus(6), 1, "default", T0 - timedelta(seconds=60), 30,
                          "waiting for preempted sessions gone to stop on agent a")
    newer = waiting("newer", 6, priority=30)
    lifo_on = GroupSettings("default", "lifo", True, True, (("topology", 1.0),))
    plan = cluster.plan([owed, newer], lifo_on)
    assert [s.id for s, _ in plan.choices] == ["owed"]
    assert plan.queues["default"][0].factors == {"preempted for": 1.0}
    lifo_off = GroupSettings("default", "lifo", True, False, (("topology", 1.0),))
    assert [s.id for s, _ in Cluster("a").plan([owed, newer], lifo_off).choices[:1]] == ["newer"]
