"""User administration: create a user with a keypair, list users, disable/enable (admin only); passwords."""
from __future__ import annotations

import re

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select, update
from typing import Literal

from corral.common import api_models as api
from corral.common.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from corral.common.ids import new_access_key, new_id, new_secret_key

from ..auth import require_admin
from ..passwords import check_password_rules, hash_password, verify_password
from ..db.models import Keypair, User
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
        items = [
            _user_view(u, n) for u, n in rows
        ]
    return json_response(api.UserList, api.UserList(items=items))


def _user_view(user: User, keypairs: int) -> api.User:
    return api.User(
        id=user.id, username=user.username, role=user.role, created_at=user.created_at, keypairs=keypairs,
        is_active=user.is_active, has_password=user.password_hash is not None,
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
        keypairs = await db.scalar(select(func.count(Keypair.access_key)).where(Keypair.user_id == user.id)) or 0
    if body.is_active is False:
        await ctx.web_sessions.end_user_sessions(user.id)
    return json_response(api.User, _user_view(user, keypairs))
