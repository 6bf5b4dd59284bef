"""User administration: create a user with a keypair, list users (admin only)."""
from __future__ import annotations

import re

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from typing import Literal

from corral.common import api_models as api
from corral.common.errors import Conflict
from corral.common.ids import new_access_key, new_id, new_secret_key

from ..auth import require_admin
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

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not USERNAME_RE.match(value):
            raise ValueError("must be 1-64 lower-case letters, digits, '_', '.' or '-', starting with a letter or '_'")
        return value


async def create_user(request: web.Request) -> web.Response:
    require_admin(user_of(request))
    body = await parse_body(request, CreateUserRequest)
    access_key, secret_key = new_access_key(), new_secret_key()
    now = utcnow()
    async with ctx_of(request).sessionmaker() as db:
        if await db.scalar(select(User.id).where(User.username == body.username)):
            raise Conflict(f"user {body.username!r} exists already")
        user = User(id=new_id(), username=body.username, role=body.role, created_at=now)
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
            api.User(id=u.id, username=u.username, role=u.role, created_at=u.created_at, keypairs=n) for u, n in rows
        ]
    return json_response(api.UserList, api.UserList(items=items))
