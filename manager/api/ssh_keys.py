"""The caller's SSH public keys (every session they own accepts them)."""
from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from corral.common import api_models as api
from corral.common.request_body import parse_body

from ..db.models import SshKey
from .context_access import ctx_of, user_of
from .responses import json_response


class AddSshKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public_key: str = Field(min_length=1, max_length=16384, description="one line of a .pub file")
    name: str = Field("", max_length=100, description="a label; the key's comment when left out")


def _model(key: SshKey) -> api.SshKey:
    return api.SshKey(id=key.id, name=key.name, fingerprint=key.fingerprint, public_key=key.public_key,
                      created_at=key.created_at)


async def list_ssh_keys(request: web.Request) -> web.Response:
    keys = await ctx_of(request).ssh_keys.list(user_of(request).user_id)
    return json_response(api.SshKeyList, {"items": [_model(key) for key in keys]})


async def add_ssh_key(request: web.Request) -> web.Response:
    body = await parse_body(request, AddSshKeyRequest)
    key = await ctx_of(request).ssh_keys.add(user_of(request).user_id, body.public_key, body.name)
    return json_response(api.SshKey, _model(key), status=201)


async def remove_ssh_key(request: web.Request) -> web.Response:
    key = await ctx_of(request).ssh_keys.remove(user_of(request).user_id, request.match_info["ref"])
    return json_response(api.SshKey, _model(key))
