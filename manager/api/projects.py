"""Project endpoints: create (admin), list, info, and membership (admins and project managers)."""
from __future__ import annotations

from aiohttp import web

from corral.common import api_models as api
from corral.common.request_body import parse_body

from ..project_service import (
    AddMemberRequest, CreateProjectRequest, ProjectService, UpdateMemberRequest, UpdateProjectRequest,
)
from .context_access import ctx_of, user_of
from .responses import json_response


def _service(request: web.Request) -> ProjectService:
    return ctx_of(request).projects


async def create_project(request: web.Request) -> web.Response:
    body = await parse_body(request, CreateProjectRequest)
    return json_response(api.Project, await _service(request).create(user_of(request), body), status=201)


async def list_projects(request: web.Request) -> web.Response:
    return json_response(api.ProjectList, {"items": await _service(request).list(user_of(request))})


async def get_project(request: web.Request) -> web.Response:
    return json_response(api.Project, await _service(request).info(user_of(request), request.match_info["name"]))


async def update_project(request: web.Request) -> web.Response:
    body = await parse_body(request, UpdateProjectRequest)
    return json_response(api.Project, await _service(request).update(user_of(request), request.match_info["name"], body))


async def add_project_member(request: web.Request) -> web.Response:
    body = await parse_body(request, AddMemberRequest)
    view = await _service(request).add_member(user_of(request), request.match_info["name"], body)
    return json_response(api.Project, view, status=201)


async def update_project_member(request: web.Request) -> web.Response:
    body = await parse_body(request, UpdateMemberRequest)
    view = await _service(request).set_member_role(
        user_of(request), request.match_info["name"], request.match_info["username"], body
    )
    return json_response(api.Project, view)


async def remove_project_member(request: web.Request) -> web.Response:
    view = await _service(request).remove_member(
        user_of(request), request.match_info["name"], request.match_info["username"]
    )
    return json_response(api.Project, view) if view is not None else web.Response(status=204)
