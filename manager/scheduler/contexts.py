"""What the drf and fair-share policies need besides the queue: per group, what each user holds now,
their decayed past usage, and their fair-share weights."""
from __future__ import annotations

from datetime import datetime
from typing import Awaitable, Callable, Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.slots import ResourceSlot

from ..config import SchedulerConfig
from ..db.models import Project, Session, User
from ..states import ACTIVE
from .policies.base import PolicyContext, Vector, add_vector, capacity_vector, usage_vector
from .node_view import NodeView

DecayedUsage = Callable[[AsyncSession, datetime, str], Awaitable[Mapping[str, Vector]]]


def capacity_of(nodes: Iterable[NodeView]) -> Vector:
    total: Vector = {}
    for node in nodes:
        add_vector(total, capacity_vector(node.state.capacity.slots()))
    return total


async def running_by_user(db: AsyncSession, groups: set[str]) -> dict[str, dict[str, Vector]]:
    """group -> user -> what their active sessions there hold."""
    result: dict[str, dict[str, Vector]] = {}
    if not groups:
        return result
    rows = await db.execute(
        select(Session.resource_group, Session.owner_id, Session.requested_slots, Session.cluster_size)
        .where(Session.status.in_(list(ACTIVE)), Session.resource_group.in_(list(groups)))
    )
    for group, owner, slots, size in rows:
        add_vector(result.setdefault(group, {}).setdefault(owner, {}), usage_vector(ResourceSlot.from_json(slots), size or 1))
    return result


async def shares_of(db: AsyncSession, owners: set[str], project_of: Mapping[str, str | None]) -> dict[str, float]:
    """A user's fair-share weight times that of the project their sessions count against."""
    if not owners:
        return {}
    users = dict((await db.execute(select(User.id, User.fair_share).where(User.id.in_(list(owners))))).all())
    project_ids = {p for p in project_of.values() if p}
    projects = dict((await db.execute(
        select(Project.id, Project.fair_share).where(Project.id.in_(list(project_ids)))
    )).all()) if project_ids else {}
    shares = {}
    for owner in owners:
        weight = float(users.get(owner) or 1.0)
        project = project_of.get(owner)
        if project:
            weight *= float(projects.get(project) or 1.0)
        shares[owner] = weight
    return shares


async def build_contexts(
    db: AsyncSession, now: datetime, policies: Mapping[str, str], nodes_by_group: Mapping[str, list[NodeView]],
    project_of: Mapping[str, str | None], decayed: DecayedUsage | None,
) -> dict[str, PolicyContext]:
    """A context for each group whose policy uses one (drf, fair-share)."""
    wanted = {group for group, name in policies.items() if name in ("drf", "fair-share")}
    running = await running_by_user(db, wanted)
    contexts = {}
    for group in wanted:
        ctx = PolicyContext(now, capacity_of(nodes_by_group.get(group, [])), running.get(group, {}))
        if policies[group] == "fair-share" and decayed is not None:
            ctx.decayed = dict(await decayed(db, now, group))
        owners = set(ctx.running) | set(ctx.decayed) | set(project_of)
        ctx.shares = await shares_of(db, owners, project_of)
        contexts[group] = ctx
    return contexts


def decayed_usage_for(config: SchedulerConfig) -> DecayedUsage:
    """Per user, their decayed usage in a group, for fair-share: the usage accounting's cached
    `DecayedUsageCache` (a full read every 10 minutes, only running and recent sessions in between)."""
    from ..usage.decayed import DecayedUsageCache

    cache = DecayedUsageCache(config.fair_share_half_life_s)

    async def per_user(db: AsyncSession, now: datetime, group: str) -> dict[str, Vector]:
        usage = await cache(db, now, group)
        return {
            holder_id: {"cpu": vector.cpu_core_s, "mem": vector.mem_byte_s, "gpu": vector.gpu_s}
            for (kind, holder_id), vector in usage.items() if kind == "user"
        }

    return per_user
