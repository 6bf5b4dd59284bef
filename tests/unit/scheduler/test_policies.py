"""Queue policies alone, and through the planner in the simulation: order invariants, limits never
exceeded, fair-share converging to the configured shares, backfill never delaying the head, and a
bounded wait for a large job under a stream of small ones."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.common.allocator import NodeState
from corral.common.gpu.topo_parser import load_topology_file
from corral.common.node_resources import NodeCapacity
from corral.common.slots import ResourceSlot
from corral.manager.db.models import ResourcePolicy
from corral.manager.scheduler.backfill import plan_reservation
from corral.manager.scheduler.groups import GroupSettings
from corral.manager.scheduler.node_view import NodeView
from corral.manager.scheduler.pending import PendingSession
from corral.manager.scheduler.policies import PolicyContext, make_policy
from corral.manager.scheduler.policies.drf import dominant_share
from corral.manager.scheduler.policies.fair_share import fair_share_factor
from corral.manager.scheduler.simulation import Job, Simulation, make_nodes

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
TOPOLOGIES = Path(__file__).resolve().parents[3] / "configs" / "gpus"


def gpu_node_capacity(gpus: int = 8) -> NodeCapacity:
    name = "dgx1-v100.toml" if gpus == 8 else "workstation-4gpu-nvlink-pairs.toml"
    cores = tuple(range(64))
    return NodeCapacity(cores, 512 << 30, {c: c // 32 for c in cores}, load_topology_file(TOPOLOGIES / name).to_json())


def pending(i: int, user: str, gpus: int = 1, priority: int = 50, age_s: float = 0.0) -> PendingSession:
    request = ResourceSlot({"cpu": 1, "mem": 1 << 30, "cuda.device": gpus})
    return PendingSession(f"s{i:04d}", user, None, "batch", request, 1, "default",
                          T0 - timedelta(seconds=age_s) + timedelta(microseconds=i), priority, "")


def drain(policy, placed: set[str] | None = None) -> list[PendingSession]:  # type: ignore[no-untyped-def]
    order = []
    while (sess := policy.next()) is not None:
        order.append(sess)
        if placed is None or sess.id in placed:
            policy.on_placed(sess)
        else:
            policy.on_skipped(sess)
    return order


def test_fifo_is_oldest_first_within_priority_and_lifo_newest_first() -> None:
    items = [pending(0, "a", age_s=30), pending(1, "b", age_s=20), pending(2, "c", age_s=10, priority=90)]
    fifo = make_policy("fifo")
    fifo.start(items, PolicyContext(T0))
    assert [s.id for s in drain(fifo)] == ["s0002", "s0000", "s0001"]
    lifo = make_policy("lifo")
    lifo.start(items, PolicyContext(T0))
    assert [s.id for s in drain(lifo)] == ["s0002", "s0001", "s0000"]


def test_unknown_policy_names_are_refused() -> None:
    with pytest.raises(Exception, match="unknown queue policy"):
        make_policy("random")


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(1, 4)), min_size=1, max_size=40),
       st.dictionaries(st.sampled_from("abcd"), st.integers(0, 16), max_size=4))
def test_drf_always_serves_a_user_with_the_lowest_dominant_share(
    requests: list[tuple[str, int]], running_gpus: dict[str, int]
) -> None:
    """DRF invariant: each session handed out belongs to a user whose dominant share (with what this
    pass gave so far) is the lowest among users that still have sessions waiting."""
    items = [pending(i, user, gpus) for i, (user, gpus) in enumerate(requests)]
    capacity = {"cpu": 640.0, "mem": float(5 << 40), "gpu": 64.0}
    running = {user: {"gpu": float(g)} for user, g in running_gpus.items()}
    policy = make_policy("drf")
    policy.start(items, PolicyContext(T0, capacity, running))
    held = {user: dict(v) for user, v in running.items()}
    left = {user: sum(1 for s in items if s.owner_id == user) for user in "abcd"}
    while (sess := policy.next()) is not None:
        shares = {u: dominant_share(held.get(u, {}), capacity) for u in left if left[u]}
        assert dominant_share(held.get(sess.owner_id, {}), capacity) == pytest.approx(min(shares.values()))
        left[sess.owner_id] -= 1
        vector = held.setdefault(sess.owner_id, {})
        vector["cpu"] = vector.get("cpu", 0.0) + 1
        vector["mem"] = vector.get("mem", 0.0) + (1 << 30)
        vector["gpu"] = vector.get("gpu", 0.0) + float(sess.request["cuda.device"])
        policy.on_placed(sess)
    assert not any(left.values())


def test_drf_takes_the_sum_of_a_users_sessions_not_the_largest() -> None:
    capacity = {"gpu": 8.0}
    assert dominant_share({"gpu": 2.0 + 2.0}, capacity) == 0.5


def test_fair_share_factor_halves_per_share_of_usage() -> None:
    assert fair_share_factor(0.0, 0.25) == 1.0
    assert fair_share_factor(0.25, 0.25) == 0.5
    assert fair_share_factor(0.5, 0.25) == 0.25
    assert fair_share_factor(0.1, 0.0) == 0.0


def _sim_jobs(count: int, seed: int, users: list[str]) -> list[Job]:
    rng = random.Random(seed)
    jobs = []
    for i in range(count):
        gpus = rng.choice([1, 1, 2, 4])
        duration = rng.uniform(600, 5400)
        jobs.append(Job(f"j{i:04d}", users[i % len(users)], rng.uniform(0, 1800), duration,
                        ResourceSlot({"cpu": gpus * 2, "mem": gpus << 30, "cuda.device": gpus}), limit_s=duration))
    return jobs


def test_fair_share_converges_to_the_configured_shares() -> None:
    shares = {"a": 1.0, "b": 2.0, "c": 1.0}
    sim = Simulation(make_nodes([gpu_node_capacity(8)] * 2), GroupSettings("default", "fair-share", True, False,
                                                                           (("topology", 1.0),)), shares=shares)
    horizon = 8 * 3600.0
    result = sim.run(_sim_jobs(300, 3, list(shares)), horizon)
    delivered = sum(result.gpu_seconds.values())
    assert result.utilization > 0.9
    for user, weight in shares.items():
        fair = delivered * weight / sum(shares.values())
        assert abs(result.gpu_seconds[user] - fair) / fair < 0.05, (user, result.gpu_seconds)


def test_no_user_policy_is_ever_exceeded() -> None:
    limit = ResourcePolicy(name="small", max_slots={"cuda.device": 3}, max_concurrent_sessions=2)
    sim = Simulation(make_nodes([gpu_node_capacity(8)] * 2), GroupSettings("default", "drf", True, False,
                                                                           (("topology", 1.0),)),
                     user_policies={"a": limit})
    jobs = _sim_jobs(120, 5, ["a", "b"])
    seen_max: dict[str, Decimal] = {}
    original = sim._pass

    def checked(pending_jobs):  # type: ignore[no-untyped-def]
        placed = original(pending_jobs)
        mine = [job for job, _, _, _ in sim.running.values() if job.user == "a"]
        mine += [pending_jobs[jid] for jid, _, _ in placed if pending_jobs[jid].user == "a"]
        gpus = sum((Decimal(job.request["cuda.device"]) for job in mine), Decimal(0))
        assert gpus <= 3 and len(mine) <= 2
        seen_max["a"] = max(seen_max.get("a", Decimal(0)), gpus)
        return placed

    sim._pass = checked  # type: ignore[method-assign]
    sim.run(jobs, 6 * 3600.0)
    assert seen_max["a"] > 0


def test_strict_fifo_places_nothing_behind_a_head_that_does_not_fit() -> None:
    sim = Simulation(make_nodes([gpu_node_capacity(4)]), GroupSettings("default", "fifo", False, False,
                                                                       (("topology", 1.0),)))
    gpu = lambda n: ResourceSlot({"cpu": 1, "mem": 1 << 30, "cuda.device": n})  # noqa: E731
    jobs = [Job("first", "a", 0, 3600, gpu(3)), Job("big", "b", 1, 600, gpu(4)), Job("small", "c", 2, 60, gpu(1))]
    result = sim.run(jobs, 7200)
    assert result.results["big"].start_s == 3600
    assert result.results["small"].start_s == 3600 + 600  # it waited behind the head
    # With backfill, "small" may start at once only when it is sure to end before the head's reservation
    # (at 3600 s): its owner's lifetime limit (120 s) says so. Without a limit it would delay the head.
    short = ResourcePolicy(name="short", max_slots={}, max_session_lifetime_s=120)
    for policies, small_start in (({"c": short}, 2), ({}, 3600 + 600)):
        backfilled = Simulation(make_nodes([gpu_node_capacity(4)]), GroupSettings("default", "fifo", True, False,
                                                                                  (("topology", 1.0),)),
                                user_policies=policies)
        result = backfilled.run(jobs, 7200)
        assert result.results["big"].start_s == 3600  # never delayed
        assert result.results["small"].start_s == small_start


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(1, 4), st.floats(60, 7200)), min_size=1, max_size=6),
       st.lists(st.tuples(st.integers(1, 4), st.floats(60, 7200), st.floats(0, 3000)), min_size=0, max_size=12))
def test_backfill_never_delays_the_head_reservation(
    running: list[tuple[int, float]], later: list[tuple[int, float, float]]
) -> None:
    """The head's start with backfill is never later than without any later sessions. (The running jobs
    all fit at once, so the 8-GPU job is the head: EASY backfill protects the head's reservation only.)"""
    gpu = lambda n: ResourceSlot({"cpu": 1, "mem": 1 << 30, "cuda.device": n})  # noqa: E731
    fitting, used = [], 0
    for n, d in running:
        if used + n <= 8:
            fitting.append((n, d))
            used += n
    jobs = [Job(f"r{i}", "r", 0.0, d, gpu(n)) for i, (n, d) in enumerate(fitting)]
    head = Job("head", "h", 1.0, 600, gpu(8))
    extra = [Job(f"l{i}", "l", 2.0 + s, d, gpu(n)) for i, (n, d, s) in enumerate(later)]

    def head_start(all_jobs: list[Job]) -> float | None:
        sim = Simulation(make_nodes([gpu_node_capacity(8)]), GroupSettings("default", "fifo", True, False,
                                                                           (("topology", 1.0),)))
        return sim.run(all_jobs, 10 * 24 * 3600.0).results["head"].start_s

    alone = head_start(jobs + [head])
    with_later = head_start(jobs + [head] + extra)
    assert alone is not None and with_later is not None
    assert with_later <= alone + 1e-6


def test_a_large_job_waits_boundedly_under_a_stream_of_small_ones() -> None:
    """An 8-GPU job behind a never-ending stream of 1-GPU jobs starts once the jobs running when it
    arrived have ended (their lifetime limits), not never."""
    gpu = lambda n: ResourceSlot({"cpu": 1, "mem": 1 << 30, "cuda.device": n})  # noqa: E731
    stream = [Job(f"s{i:04d}", f"u{i % 5}", i * 120.0, 1800, gpu(1), limit_s=1800) for i in range(400)]
    big = Job("big", "big", 3000.0, 3600, gpu(8))
    # drf and fair-share put the big job's owner (no usage yet) first: it waits for the running jobs only.
    # fifo serves the small jobs queued before it first, then reserves: a longer, still bounded wait.
    for policy, bound in (("drf", 1800), ("fair-share", 1800), ("fifo", 4 * 3600)):
        sim = Simulation(make_nodes([gpu_node_capacity(8)]), GroupSettings("default", policy, True, False,
                                                                           (("topology", 1.0),)))
        result = sim.run(stream + [big], 48 * 3600.0)
        start = result.results["big"].start_s
        assert start is not None, policy
        assert start - big.submit_s <= bound + 1, (policy, start)


def test_the_reservation_is_the_node_that_frees_up_first() -> None:
    capacity = gpu_node_capacity(4)
    early, late = (NodeView(name, name, "default", T0 + timedelta(seconds=i), NodeState(capacity))
                   for i, name in enumerate(("early", "late")))
    request = ResourceSlot({"cpu": 1, "mem": 1 << 30, "cuda.device": 4})
    holds = {}
    for node, end in ((early, 500.0), (late, 100.0)):
        allocation = node.state.try_allocate(ResourceSlot({"cpu": 1, "mem": 1 << 30, "cuda.device": 2}))
        assert allocation is not None
        node.state.add(allocation)
        holds[node.agent_id] = [(end, allocation)]
    reservation = plan_reservation("head", request, [early, late], holds, 0.0)
    assert reservation is not None and reservation.agent_id == "late" and reservation.start_ts == 100.0
    assert early.state.try_allocate(ResourceSlot({"cpu": 1, "mem": 1 << 30, "cuda.device": 2})) is not None
