"""One pass's decisions: which pending session goes where, and why the others wait.

Per resource group: the group's queue policy orders its pending sessions; each in turn is checked
against (1) whether any node of the group could ever take it, (2) its owner's and project's resource
policies with what they hold now (and what this pass has given them so far), (3) the best node that can
take it now (`GroupCandidates`), respecting the head-of-queue reservation (`backfill`). The first
session that cannot start only for lack of free resources becomes the head: with backfill on it gets a
reservation and later sessions may start only where they do not delay it; with backfill off nothing
behind it starts in that group (strict order).

In a group with ``preemption`` on, a session that lacks free resources (not quota) may instead have
running batch sessions of lower priority preempted for it (`preempt.choose_victims`; not on the head's
reserved node when another session holds the head). The plan lists them (``preemptions``), their
resources stay taken for the rest of the pass, and the session waits for them to stop; when it is the
first to wait it becomes the head with that node reserved from now, so later sessions cannot take what
the victims free.

No I/O except through ``ends_for`` (expected ends of running sessions, asked only when a head needs a
reservation), so the planner is what the dry run behind ``corral queue`` uses too.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Awaitable, Callable, Iterable, Mapping

from corral.common.node_resources import Allocation
from corral.common.slots import ResourceSlot, format_size

from ..lifecycle.preemption import preempt_reason
from ..quotas import HeldPolicy, Holder, HolderUsage, over_now, strictest
from .backfill import Ending, HeadReservation, plan_reservation
from .candidates import GroupCandidates, shape_of
from .filter import Candidate
from .gang import place_gang
from .groups import GroupSettings, default_settings
from .head import HEAD_MARK, PREEMPT_WAIT_MARK
from .node_view import NodeView
from .pending import PendingSession
from .policies import PolicyContext, make_policy
from .policies.fair_share import FairShareWeights
from .preempt import ActiveSession, choose_victims

# (sessions running, sessions this pass placed) -> expected end of each (epoch seconds).
def is_head(sess: PendingSession) -> bool:
    """Whether the last pass gave ``sess`` the head-of-queue reservation (its reason says so)."""
    return HEAD_MARK in sess.status_reason


def is_preempting_for(sess: PendingSession) -> bool:
    """Whether the last pass had running sessions preempted for ``sess`` (its reason says so)."""
    return sess.status_reason.startswith(PREEMPT_WAIT_MARK)


EndsFor = Callable[[list[str], list[str]], Awaitable[Mapping[str, float]]]


@dataclass
class QueueEntry:
    session: PendingSession
    position: int
    factors: dict[str, float]
    reason: str = ""
    placed_on: str | None = None


@dataclass
class PassPlan:
    choices: list[tuple[PendingSession, Candidate]] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    queues: dict[str, list[QueueEntry]] = field(default_factory=dict)
    reservations: dict[str, HeadReservation] = field(default_factory=dict)
    preemptions: list[tuple[str, str, str]] = field(default_factory=list)  # (victim session, agent, reason)


@dataclass
class PlanInputs:
    now: datetime
    pending: list[PendingSession]
    nodes: list[NodeView]
    groups: Mapping[str, GroupSettings]
    held: Mapping[tuple[str, str | None], list[HeldPolicy]]
    usage: dict[Holder, HolderUsage]
    contexts: Mapping[str, PolicyContext]  # per group (drf / fair-share); missing: empty
    held_by_node: Mapping[str, list[tuple[str, Allocation]]]  # agent -> (session id, allocation)
    default_policy: str = "fifo"
    default_scorer: str = "topology"
    weights: FairShareWeights | None = None
    decision_times: list[float] | None = None  # seconds per session decided (benchmarks)
    # Sessions holding nodes of groups with preemption on (those missing are never preempted).
    active: Mapping[str, ActiveSession] = field(default_factory=dict)


def gang_text(sess: PendingSession) -> str:
    """``describe`` for a session's whole gang."""
    if sess.cluster_size <= 1:
        return describe(sess.request)
    where = "one node" if sess.cluster_mode == "single-node" else f"{sess.cluster_size} different nodes"
    return f"{sess.cluster_size} kernels of {describe(sess.request)} on {where}"


def describe(request: ResourceSlot) -> str:
    parts = []
    for name, amount in sorted(request.items()):
        parts.append(f"{name}={format_size(int(amount)) if name == 'mem' else amount}")
    return ", ".join(parts) or "anything"


class Planner:
    def __init__(self, inputs: PlanInputs, ends_for: EndsFor) -> None:
        self._in = inputs
        self._ends_for = ends_for
        self._placed_on: dict[str, list[tuple[str, Allocation]]] = {}  # this pass's placements, by agent
        self._claimed: set[str] = set()  # sessions this pass preempted, or counted on to free their resources
        self._no_victims: set[tuple[str, object, int, frozenset[str]]] = set()  # searches that found none

    async def plan(self) -> PassPlan:
        result = PassPlan()
        by_group: dict[str, list[PendingSession]] = {}
        for sess in self._in.pending:
            by_group.setdefault(sess.group, []).append(sess)
        nodes_by_group: dict[str, list[NodeView]] = {}
        for node in self._in.nodes:
            nodes_by_group.setdefault(node.resource_group, []).append(node)
        for group, sessions in sorted(by_group.items()):
            settings = self._in.groups.get(group) or default_settings(
                group, self._in.default_policy, self._in.default_scorer)
            await self._plan_group(settings, sessions, nodes_by_group.get(group, []), result)
        return result

    async def _plan_group(self, settings: GroupSettings, sessions: list[PendingSession], nodes: list[NodeView],
                          result: PassPlan) -> None:
        inputs = self._in
        candidates = GroupCandidates(nodes, settings.plan())
        policy = make_policy(settings.queue_policy, inputs.weights)
        # The head keeps its place until it starts (its reason says it is the head): however the policy's
        # order moves meanwhile, later sessions cannot keep pushing its reservation back.
        # (fifo and lifo: by position; drf: among users of equal share; fair-share: not at all, its age
        # factor and decaying usage move a waiting session up instead, and it follows the shares closely.)
        heads = [s for s in sessions if is_head(s)]
        sticky = (min(heads, key=lambda s: (s.created_at, s.id))
                  if settings.backfill and heads and getattr(policy, "sticky_head", False) else None)
        # Sessions that had others preempted for them go first (highest priority first): what the victims
        # free is theirs, not taken by whoever comes earlier in the policy's order (the victims included).
        firsts = sorted((s for s in sessions if is_preempting_for(s)), key=lambda s: (-s.priority, s.created_at, s.id)
                        ) if settings.preemption else []
        if sticky is not None and sticky not in firsts:
            firsts.append(sticky)
        kinds = {s.id: ("preempted for" if is_preempting_for(s) else "head") for s in firsts}
        policy.start([s for s in sessions if s.id not in kinds], inputs.contexts.get(settings.name)
                     or PolicyContext(inputs.now))
        queue = result.queues.setdefault(settings.name, [])
        head: HeadReservation | None = None
        blocked_by: PendingSession | None = None
        position = 0
        times = inputs.decision_times
        firsts.reverse()
        while (sess := firsts.pop() if firsts else policy.next()) is not None:
            by_policy = sess.id not in kinds
            if times is not None:
                times.append(time.perf_counter())
            position += 1
            entry = QueueEntry(sess, position, policy.factors(sess) if by_policy else {kinds[sess.id]: 1.0})
            queue.append(entry)
            reason = self._check(sess, settings, candidates, blocked_by)
            if reason is None:
                held = inputs.held.get((sess.owner_id, sess.project_id), [])
                allowed = None
                if head is not None:
                    reservation = head
                    bound = strictest(held, "max_session_lifetime_s")
                    ends_by = inputs.now.timestamp() + bound if bound is not None else None
                    allowed = lambda node, alloc: reservation.allows(node, alloc, ends_by)  # noqa: E731
                chosen = place_gang(candidates, sess.request, sess.cluster_size, sess.cluster_mode, allowed)
                if chosen is not None:
                    for entry_policy in held:
                        inputs.usage.setdefault(entry_policy.holder, HolderUsage()).add(sess.request, sess.cluster_size)
                    result.choices.append((sess, chosen))
                    for kernel in chosen.kernels:
                        self._placed_on.setdefault(kernel.node.agent_id, []).append((sess.id, kernel.allocation))
                    entry.placed_on = chosen.node.agent_id
                    if by_policy:
                        policy.on_placed(sess)
                    continue
                # Gangs are not preempted for (yet): they wait, and may get the head's reservation.
                preempting = (self._preempt(sess, settings, candidates.nodes, head, result)
                              if settings.preemption and sess.cluster_size == 1 else None)
                if preempting is not None:
                    reason, head = preempting
                    if not settings.backfill:
                        blocked_by = sess  # strict order: nothing behind it starts meanwhile
                else:
                    reason, head, blocked_by = await self._waits(sess, settings, nodes, head, blocked_by)
                if head is not None and head.session_id == sess.id:
                    result.reservations[settings.name] = head
            entry.reason = reason
            if sess.status_reason != reason:
                result.reasons[sess.id] = reason
            if by_policy:
                policy.on_skipped(sess)

    def _check(self, sess: PendingSession, settings: GroupSettings, candidates: GroupCandidates,
               blocked_by: PendingSession | None) -> str | None:
        """Why ``sess`` cannot even be tried now (None: try it)."""
        if not candidates.nodes:
            return f"waiting for resources: no agent in group {settings.name!r} is up"
        if not candidates.could_ever_fit(sess.request, sess.cluster_size, sess.cluster_mode):
            if sess.cluster_size > 1:
                return (f"resource group {settings.name!r} could never fit {gang_text(sess)}; "
                        "it waits for more or larger nodes to join")
            return (f"no agent in resource group {settings.name!r} could ever fit {describe(sess.request)}; "
                    "it waits for a larger node to join")
        quota = over_now(self._in.held.get((sess.owner_id, sess.project_id), []), self._in.usage,
                         sess.request, sess.cluster_size)
        if quota is not None:
            return quota
        if blocked_by is not None:
            return f"behind session {blocked_by.id} at the head of the queue (strict order: backfill is off)"
        return None

    async def _waits(
        self, sess: PendingSession, settings: GroupSettings, nodes: list[NodeView],
        head: HeadReservation | None, blocked_by: PendingSession | None,
    ) -> tuple[str, HeadReservation | None, PendingSession | None]:
        """``sess`` fits no node now: its reason, and the group's head reservation / strict block."""
        lacking = (f"waiting for resources: no agent in group {settings.name!r} has {describe(sess.request)} free"
                   if sess.cluster_size <= 1 else
                   f"waiting for resources: group {settings.name!r} has no room for {gang_text(sess)} now")
        if not settings.backfill:
            return f"{lacking} (head of the queue)", head, sess
        if head is not None:
            return f"{lacking} (may not delay the head of the queue's reservation)", head, blocked_by
        head = await self._reserve(sess, nodes)
        if head is None:
            return f"{lacking} (head of the queue)", None, blocked_by
        when = head.start_at.strftime("%Y-%m-%d %H:%M UTC")
        where = f"agent {head.agent_id}" if not head.others else "agents " + ", ".join(head.agent_ids)
        return f"{lacking}; {HEAD_MARK} {where} reserved from about {when}", head, blocked_by

    def _preempt(
        self, sess: PendingSession, settings: GroupSettings, nodes: list[NodeView], head: HeadReservation | None,
        result: PassPlan,
    ) -> tuple[str, HeadReservation | None] | None:
        """Preempt lower-priority batch sessions for ``sess`` (it fits no node now): its reason and the
        group's head, or None when no node would do. Never on another session's reserved node."""
        if not self._in.active:
            return None
        avoid = frozenset(head.agent_ids) if head is not None else frozenset()
        key = (settings.name, shape_of(sess.request), sess.priority, avoid)
        if key in self._no_victims:  # a pass only ever takes more: what failed once fails again
            return None
        usable = [node for node in nodes if node.agent_id not in avoid]
        now_ts = self._in.now.timestamp()
        choice = choose_victims(sess.request, sess.priority, usable, lambda agent: self._in.held_by_node.get(agent, ()),
                                self._in.active, self._claimed, now_ts)
        if choice is None:
            self._no_victims.add(key)
            return None
        self._claimed.update(choice.waits_for)
        for victim in choice.victims:
            result.preemptions.append(
                (victim.id, choice.agent_id, preempt_reason(sess.id, sess.priority, victim.priority)))
        reason = f"{PREEMPT_WAIT_MARK}{', '.join(choice.waits_for)} to stop on agent {choice.agent_id}"
        if not settings.backfill:
            return f"{reason} (head of the queue)", head
        if head is None:
            head = HeadReservation(sess.id, choice.agent_id, now_ts, sess.request, choice.frees)
            return f"{reason}; {HEAD_MARK} agent {choice.agent_id} reserved for it", head
        return reason, head

    async def _reserve(self, sess: PendingSession, nodes: list[NodeView]) -> HeadReservation | None:
        held_by_node = self._in.held_by_node
        running = [sid for node in nodes for sid, _ in held_by_node.get(node.agent_id, ())]
        new = [sid for node in nodes for sid, _ in self._placed_on.get(node.agent_id, ())]
        ends = await self._ends_for(running, new)
        endings: dict[str, list[Ending]] = {}
        for node in nodes:
            holding = [*held_by_node.get(node.agent_id, ()), *self._placed_on.get(node.agent_id, ())]
            endings[node.agent_id] = [(ends[sid], allocation) for sid, allocation in holding if sid in ends]
        return plan_reservation(sess.id, sess.request, nodes, endings, self._in.now.timestamp(),
                                sess.cluster_size, sess.cluster_mode)


def held_by_node(entries: Iterable[tuple[str, str, Allocation]]) -> dict[str, list[tuple[str, Allocation]]]:
    """(agent, session id, allocation) triples grouped by agent."""
    result: dict[str, list[tuple[str, Allocation]]] = {}
    for agent_id, session_id, allocation in entries:
        result.setdefault(agent_id, []).append((session_id, allocation))
    return result
