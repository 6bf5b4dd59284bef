"""Request bodies of the JSON endpoints, validated with pydantic (400 on mistakes)."""
from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corral.common.errors import InvalidRequest

BodyT = TypeVar("BodyT", bound=BaseModel)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


async def read_body(request: web.Request, model: type[BodyT]) -> BodyT:
    raw = await request.read()
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        raise InvalidRequest("request body is not valid JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InvalidRequest(problems) from None


# -- manager API --------------------------------------------------------------------


class CreateVfolderBody(Body):
    volume: str
    vfid: str
    quota_bytes: int | None = Field(default=None, ge=0)


class CloneVfolderBody(Body):
    dst_vfid: str


class SetQuotaBody(Body):
    quota_bytes: int | None = Field(ge=0)


# -- client API ---------------------------------------------------------------------


class MkdirBody(Body):
    path: str
    parents: bool = False
    exist_ok: bool = False


class MoveBody(Body):
    src: str
    dst: str
    overwrite: bool = False
