"""Everything a pass reads besides the queue, in a handful of queries, and the planner run on it.

Shared by the scheduler's pass and the read-only ``corral queue`` view (which runs it on a snapshot of
its own, so nothing it decides is taken).
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable, Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.slots import ResourceSlot

from ..config import SchedulerConfig
from ..quotas import held_policies_many, over_now, usage_of
from .contexts import DecayedUsage, build_contexts
from .estimates import expected_ends
from .filter import Candidate
from .groups import load_groups
from .pending import PendingSession
from .planner import PassPlan, PlanInputs, Planner, held_by_node
from .policies.fair_share import FairShareWeights
from .preempt import load_active
from .snapshot import ClusterSnapshot


def weights_of(config: SchedulerConfig) -> FairShareWeights:
    return FairShareWeights(config.fair_share_weight, config.age_weight, config.priority_weight, config.age_cap_s)


async def plan_pass(
    db: AsyncSession, now: datetime, pending: list[PendingSession], snapshot: ClusterSnapshot,
    config: SchedulerConfig, decayed: DecayedUsage | None, cooling: Callable[[str], bool] = lambda _: False,
    decision_times: list[float] | None = None,
) -> PassPlan:
    nodes = [node for node in snapshot.nodes.values() if not cooling(node.agent_id)]
    groups = await load_groups(db)
    pairs = {(s.owner_id, s.project_id) for s in pending}
    held = await held_policies_many(db, pairs)
    usage = await usage_of(db, {h.holder for policies in held.values() for h in policies})
    in_queue = {s.group for s in pending}
    policies = {g: (groups[g].queue_policy if g in groups else config.queue) for g in in_queue}
    nodes_by_group: dict[str, list] = {}
    for node in nodes:
        nodes_by_group.setdefault(node.resource_group, []).append(node)
    project_of = {s.owner_id: s.project_id for s in pending}
    contexts = await build_contexts(db, now, policies, nodes_by_group, project_of, decayed)
    holding = held_by_node((h.agent_id, h.session_id, h.allocation) for h in snapshot.held.values())
    # Preemption looks at who holds the nodes of the groups that have it on and sessions waiting.
    preempting = {g for g in in_queue if g in groups and groups[g].preemption}
    active = await load_active(db, {
        sid for node in nodes if node.resource_group in preempting for sid, _ in holding.get(node.agent_id, ())
    }) if preempting else {}

    async def ends_for(running: list[str], new: list[str]) -> Mapping[str, float]:
        return await expected_ends(db, running, now, config.default_runtime_s, starting_now=new)

    inputs = PlanInputs(now, pending, nodes, groups, held, usage, contexts, holding,
                        default_policy=config.queue, default_scorer=config.score, weights=weights_of(config),
                        decision_times=decision_times, active=active)
    return await Planner(inputs, ends_for).plan()


async def recheck_policies(db: AsyncSession, batch: Sequence[tuple[PendingSession, Candidate]]) -> set[str]:
    """The sessions of ``batch`` that their resource policies still allow, read in the reserving
    transaction from the database's own rows (taken in order: each one counts for the next)."""
    pairs = {(s.owner_id, s.project_id) for s, _ in batch}
    held = await held_policies_many(db, pairs)
    if not any(held.values()):
        return {s.id for s, _ in batch}
    usage = await usage_of(db, {h.holder for policies in held.values() for h in policies})
    allowed = set()
    for sess, _ in batch:
        policies = held.get((sess.owner_id, sess.project_id), [])
        if over_now(policies, usage, sess.request, sess.cluster_size) is None:
            allowed.add(sess.id)
            for entry in policies:
                usage[entry.holder].add(ResourceSlot(sess.request), sess.cluster_size)
    return allowed


