"""Resource groups (DESIGN §5): their rows, who may use them, and their administration. Independent of HTTP.

Who may use a group: admins every group; others when both ``allowed_users`` and ``allowed_projects`` are
null (everyone), or when they are in ``allowed_users``, or when the session counts against a project in
``allowed_projects`` (so a project's group is used under that project: ``--project P``).

A group gets its row from an admin (the API), from the manager's config (``[scheduler.groups.NAME]``, at
start, when missing) or from the first agent that names it (with the defaults: fifo with backfill,
topology scoring, every session type, everyone).
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common import api_models as api
from corral.common.errors import Conflict, InvalidRequest, NotFound, UnprocessableRequest
from corral.common.resource_groups import (
    scorer_strings,
    DEFAULT_GROUP,
    DEFAULT_SCORERS,
    GROUP_NAME_RE,
    NAME_RULE,
    SESSION_TYPES,
)

from .auth import AuthUser, require_admin
from .clock import utcnow
from .db.models import Agent, Project, ProjectMember, ResourceGroup, Session, User
from .states import ACTIVE, AgentStatus, SessionStatus

log = logging.getLogger(__name__)

QueuePolicyName = Literal["fifo", "lifo", "drf", "fair-share"]
ScorerName = Literal["topology", "concentrated", "dispersed", "first-fit"]
SessionTypeName = Literal["interactive", "batch"]
# Sessions that hold a group: queued or placed, not yet ended.
HOLDING = [SessionStatus.PENDING, *ACTIVE]


class ScorerSpec(BaseModel):
    """``{"name": "topology", "weight": 1}``, or the string ``"topology:1"``."""

    model_config = ConfigDict(extra="forbid")

    name: ScorerName
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)





def _distinct_scorers(value: list[ScorerSpec] | None) -> list[ScorerSpec] | None:
    if value is not None:
        names = [s.name for s in value]
        if not names:
            raise ValueError("give at least one scorer")
        if len(set(names)) != len(names):
            raise ValueError("each scorer may be named once")
    return value


def _distinct_types(value: list[str] | None) -> list[str] | None:
    if value is not None:
        if not value:
            raise ValueError(f"give at least one session type ({', '.join(SESSION_TYPES)})")
        value = list(dict.fromkeys(value))
    return value


def _distinct_names(value: list[str] | None) -> list[str] | None:
    return None if value is None else list(dict.fromkeys(v.strip() for v in value if v.strip()))


class _GroupSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("scorers", mode="before", check_fields=False)
    @classmethod
    def _scorers_before(cls, value: Any) -> Any:
        return scorer_strings(value)

    @field_validator("scorers", check_fields=False)
    @classmethod
    def _scorers(cls, value: list[ScorerSpec] | None) -> list[ScorerSpec] | None:
        return _distinct_scorers(value)

    @field_validator("allowed_session_types", check_fields=False)
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return _distinct_types(value)

    @field_validator("allowed_users", "allowed_projects", check_fields=False)
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        return _distinct_names(value)


class CreateResourceGroupRequest(_GroupSettings):
    name: str = Field(json_schema_extra={"pattern": GROUP_NAME_RE.pattern})
    description: str = Field("", max_length=1000)
    queue_policy: QueuePolicyName = "fifo"
    backfill: StrictBool = True
    preemption: StrictBool = False
    scorers: list[ScorerSpec] = Field(
        default_factory=lambda: [ScorerSpec(**s) for s in DEFAULT_SCORERS],
        description='[{"name": ..., "weight": > 0}] (or "NAME[:WEIGHT]" strings)',
    )
    allowed_session_types: list[SessionTypeName] = Field(default_factory=lambda: list(SESSION_TYPES))
    allowed_users: list[str] | None = Field(None, description="usernames; null (and allowed_projects null): "
                                                              "everyone")
    allowed_projects: list[str] | None = Field(None, description="project names whose sessions may use it")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not GROUP_NAME_RE.match(value):
            raise ValueError(f"must be {NAME_RULE}")
        return value


class UpdateResourceGroupRequest(_GroupSettings):
    """Only the fields given change; ``allowed_users``/``allowed_projects`` null opens the group again."""

    description: str | None = Field(None, max_length=1000)
    queue_policy: QueuePolicyName | None = None
    backfill: StrictBool | None = None
    preemption: StrictBool | None = None
    scorers: list[ScorerSpec] | None = None
    allowed_session_types: list[SessionTypeName] | None = None
    allowed_users: list[str] | None = None
    allowed_projects: list[str] | None = None


# Rows -------------------------------------------------------------------------------------------------------
def new_group(name: str, now: datetime | None = None, **settings: Any) -> ResourceGroup:
    """A group row with the defaults, overridden by ``settings``."""
    values: dict[str, Any] = {
        "description": "", "queue_policy": "fifo", "backfill": True, "preemption": False,
        "scorers": [dict(s) for s in DEFAULT_SCORERS], "allowed_session_types": list(SESSION_TYPES),
        "allowed_users": None, "allowed_projects": None,
    }
    values.update(settings)
    return ResourceGroup(name=name, created_at=now or utcnow(), **values)


async def ensure_group(db: AsyncSession, name: str, why: str) -> bool:
    """Add the group's row with the defaults if it has none (the caller commits); whether it was added."""
    if await db.get(ResourceGroup, name) is not None:
        return False
    db.add(new_group(name))
    log.info("resource group %r created with the defaults (fifo with backfill, topology scoring, every session "
             "type, everyone): %s", name, why)
    return True


def open_to_everyone(group: ResourceGroup) -> bool:
    return group.allowed_users is None and group.allowed_projects is None


def may_use(group: ResourceGroup, user: AuthUser, project_id: str | None) -> bool:
    """Whether ``user`` may start a session in ``group`` counting against ``project_id``."""
    if user.is_admin or open_to_everyone(group):
        return True
    return user.user_id in (group.allowed_users or []) or (
        project_id is not None and project_id in (group.allowed_projects or [])
    )


def usable_by(group: ResourceGroup, user: AuthUser, project_ids: Iterable[str]) -> bool:
    """Whether ``user`` may use ``group`` under some project of theirs (or none)."""
    return may_use(group, user, None) or bool(set(project_ids) & set(group.allowed_projects or []))


async def member_projects(db: AsyncSession, user_id: str) -> list[str]:
    return list((await db.scalars(select(ProjectMember.project_id).where(ProjectMember.user_id == user_id))).all())


async def usable_groups(db: AsyncSession, user: AuthUser) -> list[ResourceGroup]:
    projects = await member_projects(db, user.user_id)
    groups = (await db.scalars(select(ResourceGroup).order_by(ResourceGroup.name))).all()
    return [g for g in groups if usable_by(g, user, projects)]


async def _ids_of(db: AsyncSession, kind: str, names: list[str] | None) -> list[str] | None:
    """Usernames / project names → ids; unknown names are a 422 naming them."""
    if names is None:
        return None
    column, id_column = (User.username, User.id) if kind == "user" else (Project.name, Project.id)
    rows = dict((await db.execute(select(column, id_column).where(column.in_(names)))).all()) if names else {}
    unknown = [n for n in names if n not in rows]
    if unknown:
        raise UnprocessableRequest(f"no such {kind}{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                                   unknown=unknown)
    return [rows[n] for n in names]


async def _names_of(db: AsyncSession, kind: str, ids: list[str] | None) -> list[str] | None:
    if ids is None:
        return None
    column, id_column = (User.username, User.id) if kind == "user" else (Project.name, Project.id)
    rows = dict((await db.execute(select(id_column, column).where(id_column.in_(ids)))).all()) if ids else {}
    return [rows.get(i, i) for i in ids]


class ResourceGroupService:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def _view(self, db: AsyncSession, group: ResourceGroup, *, admin: bool) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if admin:
            rows = (await db.execute(
                select(Agent.status, func.count(Agent.id))
                .where(Agent.resource_group == group.name, Agent.status != AgentStatus.TERMINATED)
                .group_by(Agent.status)
            )).all()
            extra = {
                "allowed_users": await _names_of(db, "user", group.allowed_users),
                "allowed_projects": await _names_of(db, "project", group.allowed_projects),
                "agents": sum(n for _, n in rows),
                "alive_agents": sum(n for status, n in rows if status == AgentStatus.ALIVE),
            }
        return api.ResourceGroup(
            name=group.name, description=group.description, queue_policy=group.queue_policy,
            backfill=group.backfill, preemption=group.preemption,
            scorers=[api.Scorer(name=s.get("name", ""), weight=s.get("weight", 1.0)) for s in group.scorers or []],
            allowed_session_types=list(group.allowed_session_types or []), created_at=group.created_at, **extra,
        ).to_json()

    async def list(self, user: AuthUser) -> list[dict[str, Any]]:
        """Every group for admins; the groups they may use for others."""
        async with self._sessionmaker() as db:
            if user.is_admin:
                groups = list((await db.scalars(select(ResourceGroup).order_by(ResourceGroup.name))).all())
            else:
                groups = await usable_groups(db, user)
            return [await self._view(db, g, admin=user.is_admin) for g in groups]

    async def info(self, user: AuthUser, name: str) -> dict[str, Any]:
        async with self._sessionmaker() as db:
            group = await db.get(ResourceGroup, name)
            if group is None or (not user.is_admin and not usable_by(group, user, await member_projects(db, user.user_id))):
                raise NotFound(f"no resource group {name!r}")
            return await self._view(db, group, admin=user.is_admin)

    async def create(self, user: AuthUser, req: CreateResourceGroupRequest) -> dict[str, Any]:
        require_admin(user)
        async with self._sessionmaker() as db:
            if await db.get(ResourceGroup, req.name) is not None:
                raise Conflict(f"resource group {req.name!r} exists already")
            group = new_group(
                req.name, description=req.description, queue_policy=req.queue_policy, backfill=req.backfill,
                preemption=req.preemption, scorers=[s.model_dump() for s in req.scorers],
                allowed_session_types=list(req.allowed_session_types),
                allowed_users=await _ids_of(db, "user", req.allowed_users),
                allowed_projects=await _ids_of(db, "project", req.allowed_projects),
            )
            db.add(group)
            try:
                await db.commit()
            except IntegrityError:
                raise Conflict(f"resource group {req.name!r} exists already") from None
            log.info("resource group %s created by %s", req.name, user.username)
            return await self._view(db, group, admin=True)

    async def update(self, user: AuthUser, name: str, req: UpdateResourceGroupRequest) -> dict[str, Any]:
        require_admin(user)
        given = req.model_fields_set
        async with self._sessionmaker() as db:
            group = await db.get(ResourceGroup, name, with_for_update=True)
            if group is None:
                raise NotFound(f"no resource group {name!r}")
            for field in ("description", "queue_policy", "backfill", "preemption"):
                if field in given:
                    value = getattr(req, field)
                    if value is None:
                        raise InvalidRequest(f"{field} cannot be null")
                    setattr(group, field, value)
            if "scorers" in given:
                if req.scorers is None:
                    raise InvalidRequest("scorers cannot be null")
                group.scorers = [s.model_dump() for s in req.scorers]
            if "allowed_session_types" in given:
                if req.allowed_session_types is None:
                    raise InvalidRequest("allowed_session_types cannot be null")
                group.allowed_session_types = list(req.allowed_session_types)
            if "allowed_users" in given:
                group.allowed_users = await _ids_of(db, "user", req.allowed_users)
            if "allowed_projects" in given:
                group.allowed_projects = await _ids_of(db, "project", req.allowed_projects)
            await db.commit()
            log.info("resource group %s changed by %s: %s", name, user.username, sorted(given))
            return await self._view(db, group, admin=True)

    async def delete(self, user: AuthUser, name: str) -> dict[str, Any]:
        """Refused while agents are in it, sessions queue or run in it, or users have it as their default."""
        require_admin(user)
        async with self._sessionmaker() as db:
            group = await db.get(ResourceGroup, name, with_for_update=True)
            if group is None:
                raise NotFound(f"no resource group {name!r}")
            if name == DEFAULT_GROUP:
                raise Conflict(f"the {DEFAULT_GROUP!r} resource group cannot be deleted")
            agents = (await db.scalars(
                select(Agent.id).where(Agent.resource_group == name, Agent.status != AgentStatus.TERMINATED)
                .order_by(Agent.id)
            )).all()
            if agents:
                raise Conflict(f"resource group {name!r} still has {_some(agents, 'agent')}; move them to another "
                               "group (the agent's resource_group setting) first", agents=list(agents))
            sessions = await db.scalar(
                select(func.count(Session.id)).where(Session.resource_group == name, Session.status.in_(HOLDING))
            ) or 0
            if sessions:
                raise Conflict(f"resource group {name!r} still has {sessions} active or queued "
                               f"session{'s' if sessions > 1 else ''}", sessions=sessions)
            users = (await db.scalars(
                select(User.username).where(User.default_group == name).order_by(User.username)
            )).all()
            if users:
                raise Conflict(f"resource group {name!r} is the default group of {_some(users, 'user')}",
                               users=list(users))
            view = await self._view(db, group, admin=True)
            await db.delete(group)
            await db.commit()
            log.info("resource group %s deleted by %s", name, user.username)
            return view


def _some(names: Iterable[str], what: str, shown: int = 5) -> str:
    names = list(names)
    listed = ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
    return f"{len(names)} {what}{'s' if len(names) > 1 else ''} ({listed})"
