"""Resource policy endpoints (admins): list, create, info, change, delete."""
from __future__ import annotations

from aiohttp import web

from corral.common import api_models as api
from corral.common.request_body import parse_body

from ..resource_policies import CreateResourcePolicyRequest, ResourcePolicyService, UpdateResourcePolicyRequest
from .context_access import ctx_of, user_of
from .responses import json_response


def _service(request: web.Request) -> ResourcePolicyService:
    return ctx_of(request).resource_policies


async def list_resource_policies(request: web.Request) -> web.Response:
    return json_response(api.ResourcePolicyList, {"items": await _service(request).list(user_of(request))})


async def create_resource_policy(request: web.Request) -> web.Response:
    body = await parse_body(request, CreateResourcePolicyRequest)
    return json_response(api.ResourcePolicy, await _service(request).create(user_of(request), body), status=201)


async def get_resource_policy(request: web.Request) -> web.Response:
    view = await _service(request).info(user_of(request), request.match_info["name"])
    return json_response(api.ResourcePolicy, view)


async def update_resource_policy(request: web.Request) -> web.Response:
    body = await parse_body(request, UpdateResourcePolicyRequest)
    view = await _service(request).update(user_of(request), request.match_info["name"], body)
    return json_response(api.ResourcePolicy, view)


async def delete_resource_policy(request: web.Request) -> web.Response:
    view = await _service(request).delete(user_of(request), request.match_info["name"])
    return json_response(api.ResourcePolicy, view)
