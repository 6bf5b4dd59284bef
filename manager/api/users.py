"""User administration: create a user with a keypair, list users, disable/enable (admin only); passwords."""
from __future__ import annotations

import re

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator
from sqlalchemy import func, select, update
from typing import Any, Literal

from corral.common import api_models as api
from corral.common.errors import Conflict, InvalidRequest, NotFound, PermissionDenied, UnprocessableRequest
from corral.common.ids import new_access_key, new_id, new_secret_key

from ..auth import AuthUser, require_admin
from ..resource_groups import member_projects, usable_by
from ..passwords import check_password_rules, hash_password, verify_password
from ..db.models import Keypair, Project, ProjectMember, ResourceGroup, ResourcePolicy, User
from ..clock import utcnow
from .context_access import ctx_of, user_of
from .responses import json_response
from corral.common.request_body import parse_body

USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,63}$")


class CreateUserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(json_schema_extra={"pattern": USERNAME_RE.pattern})
    role: Literal["user", "admin"] = "user"
    password: str | None = Field(None, description="for the web UI: 8-1024 characters, not the username")

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not USERNAME_RE.match(value):
            raise ValueError("must be 1-64 lower-case letters, digits, '_', '.' or '-', starting with a letter or '_'")
        return value


async def create_user(request: web.Request) -> web.Response:
    require_admin(user_of(request))
    body = await parse_body(request, CreateUserRequest)
    password_hash = None
    if body.password is not None:
        check_password_rules(body.password, body.username)
        password_hash = await hash_password(body.password)
    access_key, secret_key = new_access_key(), new_secret_key()
    now = utcnow()
    async with ctx_of(request).sessionmaker() as db:
        if await db.scalar(select(User.id).where(User.username == body.username)):
            raise Conflict(f"user {body.username!r} exists already")
        user = User(id=new_id(), username=body.username, role=body.role, created_at=now, password_hash=password_hash)
        db.add(user)
        await db.flush()
        db.add(Keypair(access_key=access_key, secret_key=secret_key, user_id=user.id, is_active=True, created_at=now))
        await db.commit()
    created = api.NewUser(
        id=user.id, username=user.username, role=user.role, created_at=now, access_key=access_key, secret_key=secret_key
    )
    return json_response(api.NewUser, created, status=201)


async def list_users(request: web.Request) -> web.Response:
    require_admin(user_of(request))
    async with ctx_of(request).sessionmaker() as db:
        rows = await db.execute(
            select(User, func.count(Keypair.access_key))
            .join(Keypair, Keypair.user_id == User.id, isouter=True)
            .group_by(User.id)
            .order_by(User.username)
        )
        project_names = dict((await db.execute(select(Project.id, Project.name))).all())
        items = [
            _user_view(u, n, project_names.get(u.default_project_id or "")) for u, n in rows
        ]
    return json_response(api.UserList, api.UserList(items=items))


def _user_view(user: User, keypairs: int, default_project: str | None = None) -> api.User:
    return api.User(
        id=user.id, username=user.username, role=user.role, created_at=user.created_at, keypairs=keypairs,
        is_active=user.is_active, has_password=user.password_hash is not None,
        resource_policy=user.resource_policy, default_group=user.default_group, default_project=default_project,
        fair_share=user.fair_share if user.fair_share is not None else 1.0,
    )


class SetPasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(description="8-1024 characters, not the username")
    current_password: str | None = Field(
        None, description="needed when users change their own password (admins setting anyone's need not)"
    )


async def set_password(request: web.Request) -> web.Response:
    """An admin sets anyone's password; a user changes their own (with the current one, if they have
    one). The user's web sessions end, but the one making the change."""
    caller = user_of(request)
    username = request.match_info["username"]
    if not caller.is_admin and caller.username != username:
        raise PermissionDenied("only an admin can set another user's password")
    body = await parse_body(request, SetPasswordRequest)
    check_password_rules(body.password, username)
    ctx = ctx_of(request)
    async with ctx.sessionmaker() as db:
        user = await db.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    if user.password_hash is not None and (not caller.is_admin or body.current_password is not None):
        if body.current_password is None:
            raise InvalidRequest("current_password is needed to change your own password")
        if not await verify_password(user.password_hash, body.current_password):
            raise PermissionDenied("the current password is wrong")
    password_hash = await hash_password(body.password)
    async with ctx.sessionmaker.begin() as db:
        await db.execute(update(User).where(User.id == user.id).values(password_hash=password_hash))
    await ctx.web_sessions.end_user_sessions(user.id, keep=caller.web_session_id)
    return web.Response(status=204)


class UpdateUserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_active: bool | None = Field(None, description="false disables the user: their keypairs and web sessions "
                                                     "stop working at once; true enables them again")
    # Scheduling: given (even as null, which clears it) or left out (unchanged).
    resource_policy: str | None = Field(None, description="the resource policy they are held to; null: none")
    default_group: str | None = Field(None, description="their sessions' resource group when they name none; "
                                                        "null: \"default\"")
    default_project: str | None = Field(None, description="the project (name; they must be a member) their "
                                                          "sessions count against when they name none; null: none")
    fair_share: StrictFloat | StrictInt | None = Field(None, gt=0, allow_inf_nan=False,
                                                       description="fair-share weight, > 0")


async def update_user(request: web.Request) -> web.Response:
    caller = user_of(request)
    require_admin(caller)
    body = await parse_body(request, UpdateUserRequest)
    username = request.match_info["username"]
    ctx = ctx_of(request)
    async with ctx.sessionmaker.begin() as db:
        user = await db.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"no user {username!r}")
        if body.is_active is not None:
            if not body.is_active and user.id == caller.user_id:
                raise Conflict("you cannot disable yourself")
            user.is_active = body.is_active
        await _apply_scheduling(db, user, body)
        keypairs = await db.scalar(select(func.count(Keypair.access_key)).where(Keypair.user_id == user.id)) or 0
        project = await db.get(Project, user.default_project_id) if user.default_project_id else None
    if body.is_active is False:
        await ctx.web_sessions.end_user_sessions(user.id)
    return json_response(api.User, _user_view(user, keypairs, project.name if project else None))


async def _apply_scheduling(db: Any, user: User, body: UpdateUserRequest) -> None:
    """The user's policy, default group and project, fair share: each must name what exists (422)."""
    given = body.model_fields_set
    if "resource_policy" in given:
        if body.resource_policy is not None and await db.get(ResourcePolicy, body.resource_policy) is None:
            raise UnprocessableRequest(f"no resource policy {body.resource_policy!r}")
        user.resource_policy = body.resource_policy
    if "default_group" in given:
        if body.default_group is not None:
            group = await db.get(ResourceGroup, body.default_group)
            if group is None:
                raise UnprocessableRequest(f"no resource group {body.default_group!r}")
            as_user = AuthUser(user_id=user.id, username=user.username, role=user.role, access_key="")
            if not usable_by(group, as_user, await member_projects(db, user.id)):
                raise UnprocessableRequest(f"{user.username} may not use resource group {group.name!r}; allow them "
                                           "first (corral admin group set --allow-user)")
        user.default_group = body.default_group
    if "default_project" in given:
        project_id = None
        if body.default_project is not None:
            project = await db.scalar(select(Project).where(Project.name == body.default_project))
            if project is None:
                raise UnprocessableRequest(f"no project {body.default_project!r}")
            member = await db.get(ProjectMember, (project.id, user.id))
            if member is None:
                raise UnprocessableRequest(f"{user.username} is not a member of project {project.name}; add them "
                                           "first (corral project add-member)")
            project_id = project.id
        user.default_project_id = project_id
    if "fair_share" in given:
        if body.fair_share is None:
            raise InvalidRequest("fair_share cannot be null (1 is the default weight)")
        user.fair_share = float(body.fair_share)
