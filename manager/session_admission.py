"""Whether a new session is admitted, and where: its resource group, project and priority (DESIGN §5).

Run inside the creation transaction, with the owner's row (and the project's) locked, so two creations
racing for the last queue slot of a policy are counted one after the other.

Answers, each a problem with a detail saying what to do:
- a priority above ``USER_MAX_PRIORITY`` asked by a non-admin: 403;
- a project that does not exist: 404; one the owner is not a member of (admins may use any): 403;
- a group that does not exist: 404 naming the groups the owner may use; one they may not use: 403;
  one that does not take the session type: 422;
- a request that could never fit a resource policy (more than its slot totals, its cluster size,
  a policy with no sessions at all): 422 naming the limit;
- a policy's ``max_pending_sessions`` reached: 409 ``policy-limit-reached`` naming the limit (a
  state to wait out, not bad input and not a rate: it clears when queued sessions start or end).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.errors import (
    NotFound,
    PermissionDenied,
    PolicyLimitReached,
    UnprocessableRequest,
    UnsatisfiableRequest,
)
from corral.common.resource_groups import DEFAULT_GROUP, DEFAULT_PRIORITY, USER_MAX_PRIORITY
from corral.common.slots import ResourceSlot

from .auth import AuthUser
from .db.models import Project, ProjectMember, ResourceGroup, User
from .project_service import find_project
from .quotas import HeldPolicy, held_policies, never_fits, over_pending, usage_of
from .resource_groups import may_use, member_projects, usable_by, usable_groups
from .session_requests import CreateSessionRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """Where an admitted session goes, and the policies it is held to."""

    resource_group: str
    project_id: str | None
    priority: int
    held: list[HeldPolicy] = field(default_factory=list)


async def admit(db: AsyncSession, user: AuthUser, req: CreateSessionRequest, request: ResourceSlot) -> Placement:
    """Every check but the queue limit (``check_queue``, once the rest of the request is known to be fine)."""
    # A write first: it takes the owner's row lock on PostgreSQL and the database's write lock on SQLite
    # (whose driver begins the transaction only at the first write), so what is counted below stays true
    # until the session is added.
    await db.execute(
        update(User).where(User.id == user.user_id).values(is_active=User.is_active)
        .execution_options(synchronize_session=False)
    )
    owner = await db.get(User, user.user_id)
    if owner is None:
        raise PermissionDenied("your user no longer exists")
    priority = DEFAULT_PRIORITY if req.priority is None else req.priority
    if priority > USER_MAX_PRIORITY and not user.is_admin:
        raise PermissionDenied(f"priority {priority} is for admins; users may ask for 0-{USER_MAX_PRIORITY}")
    project_id = await _project_of(db, user, owner, req.project)
    group = await _group_of(db, user, owner, req.resource_group, project_id)
    if req.type not in (group.allowed_session_types or []):
        allowed = ", ".join(group.allowed_session_types or []) or "none"
        raise UnprocessableRequest(
            f"resource group {group.name!r} does not take {req.type} sessions (it takes: {allowed})",
            resource_group=group.name, allowed_session_types=list(group.allowed_session_types or []),
        )
    held = await held_policies(db, owner.id, project_id)
    for entry in held:
        reason = never_fits([entry], request, req.cluster_size)
        if reason is not None:
            raise UnsatisfiableRequest(f"this request can never start: {reason}", policy=entry.policy.name,
                                       holder=entry.holder.kind)
    return Placement(group.name, project_id, priority, held)


async def check_queue(db: AsyncSession, placement: Placement) -> None:
    """409 when one more queued session would break a policy's ``max_pending_sessions``."""
    if not any(entry.policy.max_pending_sessions is not None for entry in placement.held):
        return
    usage = await usage_of(db, [entry.holder for entry in placement.held])
    for entry in placement.held:
        reason = over_pending([entry], usage)
        if reason is not None:
            raise PolicyLimitReached(f"{reason}; wait for some to start or end, or cancel one",
                                     policy=entry.policy.name, holder=entry.holder.kind)


async def _project_of(db: AsyncSession, user: AuthUser, owner: User, name: str | None) -> str | None:
    if name is not None:
        project = await find_project(db, name)
        if project is None:
            raise NotFound(f"no project {name!r}")
        if not user.is_admin and await db.get(ProjectMember, (project.id, owner.id)) is None:
            raise PermissionDenied(f"you are not a member of project {project.name}")
        await _lock(db, project.id)
        return project.id
    if not owner.default_project_id:
        return None
    # A default project the owner has left (or that is gone) is not used: sessions then count against
    # the owner alone, as with no default.
    project = await db.get(Project, owner.default_project_id)
    if project is None or (not user.is_admin and await db.get(ProjectMember, (project.id, owner.id)) is None):
        log.info("%s's default project %s is gone or they left it: the session counts against them alone",
                 owner.username, owner.default_project_id)
        return None
    await _lock(db, project.id)
    return project.id


async def _lock(db: AsyncSession, project_id: str) -> None:
    await db.execute(select(Project.id).where(Project.id == project_id).with_for_update())


async def _group_of(
    db: AsyncSession, user: AuthUser, owner: User, name: str | None, project_id: str | None
) -> ResourceGroup:
    name = name or owner.default_group or DEFAULT_GROUP
    group = await db.get(ResourceGroup, name)
    if group is None:
        usable = [g.name for g in await usable_groups(db, user)]
        raise NotFound(
            f"no resource group {name!r}; you may use: {', '.join(usable) if usable else 'none'}",
            resource_groups=usable,
        )
    if not may_use(group, user, project_id):
        hint = ""
        projects = await member_projects(db, owner.id)
        if usable_by(group, user, projects):
            names = (await db.scalars(
                select(Project.name).where(Project.id.in_(set(projects) & set(group.allowed_projects or [])))
                .order_by(Project.name)
            )).all()
            hint = f" unless the session counts against project {' or '.join(names)} (--project)"
        raise PermissionDenied(f"you may not use resource group {name!r}{hint}", resource_group=name)
    return group
