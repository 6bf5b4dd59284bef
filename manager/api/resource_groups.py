"""Resource group endpoints: list (users: those they may use), info, and administration (admins)."""
from __future__ import annotations

from aiohttp import web

from corral.common import api_models as api
from corral.common.request_body import parse_body

from ..resource_groups import CreateResourceGroupRequest, ResourceGroupService, UpdateResourceGroupRequest
from .context_access import ctx_of, user_of
from .responses import json_response


def _service(request: web.Request) -> ResourceGroupService:
    return ctx_of(request).resource_groups


async def list_resource_groups(request: web.Request) -> web.Response:
    return json_response(api.ResourceGroupList, {"items": await _service(request).list(user_of(request))})


async def create_resource_group(request: web.Request) -> web.Response:
    body = await parse_body(request, CreateResourceGroupRequest)
    return json_response(api.ResourceGroup, await _service(request).create(user_of(request), body), status=201)


async def get_resource_group(request: web.Request) -> web.Response:
    view = await _service(request).info(user_of(request), request.match_info["name"])
    return json_response(api.ResourceGroup, view)


async def update_resource_group(request: web.Request) -> web.Response:
    body = await parse_body(request, UpdateResourceGroupRequest)
    view = await _service(request).update(user_of(request), request.match_info["name"], body)
    return json_response(api.ResourceGroup, view)


async def delete_resource_group(request: web.Request) -> web.Response:
    view = await _service(request).delete(user_of(request), request.match_info["name"])
    return json_response(api.ResourceGroup, view)
