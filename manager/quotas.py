"""Resource policies: the limits a user, and the project a session counts against, are held to.

A session is held to its owner's policy and to its project's (both, when it has a project). Usage is
always read from the database's own rows (sessions in an active state, or pending ones), never kept in
counters that could drift, so the check belongs in the transaction that takes the reservation or adds
the session.

Slot totals count each kernel's request: ``cuda.device`` sums whole GPUs, ``cuda.shares`` sums GPU
fractions (a 0.25 share counts 0.25).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.session_status import ACTIVE, SessionStatus
from corral.common.slots import CUDA_DEVICE, CUDA_SHARES, MEM, ResourceSlot, format_size

from .db.models import Project, ResourcePolicy, Session, User

SLOT_WORDS = {"cpu": "CPU cores", MEM: "memory", CUDA_DEVICE: "GPUs", CUDA_SHARES: "GPU shares"}


@dataclass(frozen=True)
class Holder:
    """Whose limits: ``kind`` is ``user`` or ``project``."""

    kind: str
    id: str
    label: str  # what a reason names: "user quota", "project vision quota"


@dataclass(frozen=True)
class HeldPolicy:
    holder: Holder
    policy: ResourcePolicy


@dataclass
class HolderUsage:
    """What a holder has now: sessions in an active state, their slots, and pending sessions."""

    active_sessions: int = 0
    pending_sessions: int = 0
    slots: ResourceSlot = field(default_factory=ResourceSlot)

    def add(self, request: ResourceSlot, cluster_size: int = 1) -> None:
        self.active_sessions += 1
        self.slots = self.slots + session_slots(request, cluster_size)


def session_slots(request: ResourceSlot, cluster_size: int) -> ResourceSlot:
    """A session's total: its per-kernel request times its kernels."""
    return ResourceSlot({name: amount * cluster_size for name, amount in request.items()})


def describe_amount(slot: str, amount: Decimal) -> str:
    if slot == MEM:
        return format_size(int(amount))
    return f"{amount.normalize():f}"


async def held_policies(db: AsyncSession, owner_id: str, project_id: str | None) -> list[HeldPolicy]:
    """The policies a session of ``owner_id`` (counting against ``project_id``) is held to."""
    return (await held_policies_many(db, [(owner_id, project_id)]))[(owner_id, project_id)]


async def held_policies_many(
    db: AsyncSession, pairs: Iterable[tuple[str, str | None]]
) -> dict[tuple[str, str | None], list[HeldPolicy]]:
    """The policies each (owner, project) pair is held to: the owner's, then the project's; three queries
    for any number of pairs."""
    wanted = set(pairs)
    user_ids = {owner for owner, _ in wanted}
    project_ids = {project for _, project in wanted if project}
    user_policy = dict((await db.execute(
        select(User.id, User.resource_policy).where(User.id.in_(user_ids), User.resource_policy.is_not(None))
    )).all()) if user_ids else {}
    projects = {pid: (name, policy) for pid, name, policy in (await db.execute(
        select(Project.id, Project.name, Project.resource_policy)
        .where(Project.id.in_(project_ids), Project.resource_policy.is_not(None))
    )).all()} if project_ids else {}
    names = set(user_policy.values()) | {policy for _, policy in projects.values()}
    policies = {p.name: p for p in (await db.scalars(
        select(ResourcePolicy).where(ResourcePolicy.name.in_(names))
    )).all()} if names else {}
    result: dict[tuple[str, str | None], list[HeldPolicy]] = {}
    for owner, project in wanted:
        held: list[HeldPolicy] = []
        if user_policy.get(owner) in policies:
            held.append(HeldPolicy(Holder("user", owner, "user quota"), policies[user_policy[owner]]))
        if project and project in projects and projects[project][1] in policies:
            name, policy = projects[project]
            held.append(HeldPolicy(Holder("project", project, f"project {name} quota"), policies[policy]))
        result[(owner, project)] = held
    return result


async def usage_of(db: AsyncSession, holders: Iterable[Holder]) -> dict[Holder, HolderUsage]:
    """Each holder's active and pending sessions and active slots, from the sessions table."""
    wanted = list(set(holders))
    usage = {holder: HolderUsage() for holder in wanted}
    users = {h.id: h for h in wanted if h.kind == "user"}
    projects = {h.id: h for h in wanted if h.kind == "project"}
    statuses = [*ACTIVE, SessionStatus.PENDING]
    for column, by_id in ((Session.owner_id, users), (Session.project_id, projects)):
        if not by_id:
            continue
        rows = await db.execute(
            select(column, Session.status, Session.requested_slots, Session.cluster_size)
            .where(column.in_(list(by_id)), Session.status.in_(statuses))
        )
        for holder_id, status, slots, cluster_size in rows:
            entry = usage[by_id[holder_id]]
            if status == SessionStatus.PENDING:
                entry.pending_sessions += 1
            else:
                entry.add(ResourceSlot.from_json(slots), cluster_size or 1)
    return usage


def never_fits(held: Iterable[HeldPolicy], request: ResourceSlot, cluster_size: int) -> str | None:
    """Why a request could never start under these policies (None: it could)."""
    total = session_slots(request, cluster_size)
    for entry in held:
        policy = entry.policy
        if policy.max_cluster_size is not None and cluster_size > policy.max_cluster_size:
            return (f"{entry.holder.label}: a cluster of {cluster_size} kernels is more than the "
                    f"limit of {policy.max_cluster_size}")
        if policy.max_concurrent_sessions is not None and policy.max_concurrent_sessions < 1:
            return f"{entry.holder.label}: no sessions are allowed (max concurrent sessions is 0)"
        for slot, limit in limits(policy).items():
            if total.get(slot, Decimal(0)) > limit:
                return (f"{entry.holder.label}: {describe_amount(slot, total[slot])} "
                        f"{SLOT_WORDS.get(slot, slot)} is more than the limit of {describe_amount(slot, limit)}")
    return None


def over_now(
    held: Iterable[HeldPolicy], usage: Mapping[Holder, HolderUsage], request: ResourceSlot, cluster_size: int
) -> str | None:
    """Why the session must wait under these policies given current usage (None: it may start now)."""
    total = session_slots(request, cluster_size)
    for entry in held:
        policy, used = entry.policy, usage.get(entry.holder, HolderUsage())
        cap = policy.max_concurrent_sessions
        if cap is not None and used.active_sessions + 1 > cap:
            return f"{entry.holder.label}: {used.active_sessions} of {cap} sessions running"
        for slot, limit in limits(policy).items():
            want = total.get(slot, Decimal(0))
            if want and used.slots.get(slot, Decimal(0)) + want > limit:
                return (f"{entry.holder.label}: {describe_amount(slot, used.slots.get(slot, Decimal(0)))} of "
                        f"{describe_amount(slot, limit)} {SLOT_WORDS.get(slot, slot)} in use")
    return None


def over_pending(held: Iterable[HeldPolicy], usage: Mapping[Holder, HolderUsage]) -> str | None:
    """Why one more pending session is refused (None: it is accepted)."""
    for entry in held:
        cap = entry.policy.max_pending_sessions
        used = usage.get(entry.holder, HolderUsage()).pending_sessions
        if cap is not None and used + 1 > cap:
            return f"{entry.holder.label}: {used} of {cap} pending sessions already queued"
    return None


def limits(policy: ResourcePolicy) -> dict[str, Decimal]:
    return {slot: Decimal(str(amount)) for slot, amount in (policy.max_slots or {}).items() if amount is not None}


def strictest(held: Iterable[HeldPolicy], attribute: str) -> float | None:
    """The smallest of a per-session limit (lifetime, idle timeout) over the policies, None when none sets it."""
    values = [getattr(entry.policy, attribute) for entry in held if getattr(entry.policy, attribute) is not None]
    return min(values) if values else None

