"""Vfolder endpoints: create, list, info, update, trash, restore, purge, share, tokens."""
from __future__ import annotations

from aiohttp import web

from corral.common import api_models as api

from ..storage.vfolder_service import (
    CreateVfolderRequest,
    ShareRequest,
    TokenRequest,
    UpdateVfolderRequest,
    VfolderService,
)
from .context_access import ctx_of, user_of
from .responses import json_response
from corral.common.request_body import parse_body


def _service(request: web.Request) -> VfolderService:
    return ctx_of(request).vfolders


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


async def create_vfolder(request: web.Request) -> web.Response:
    body = await parse_body(request, CreateVfolderRequest)
    return json_response(api.Vfolder, await _service(request).create(user_of(request), body), status=201)


async def list_vfolders(request: web.Request) -> web.Response:
    items = await _service(request).list(user_of(request), trashed=_flag(request, "trashed"))
    return json_response(api.VfolderList, {"items": items})


async def list_vfolder_hosts(request: web.Request) -> web.Response:
    return json_response(api.StorageHostList, {"items": await _service(request).hosts()})


async def get_vfolder(request: web.Request) -> web.Response:
    view = await _service(request).info(
        user_of(request), request.match_info["ref"], with_usage=request.query.get("usage", "1") != "0"
    )
    return json_response(api.Vfolder, view)


async def update_vfolder(request: web.Request) -> web.Response:
    body = await parse_body(request, UpdateVfolderRequest)
    return json_response(api.Vfolder, await _service(request).update(user_of(request), request.match_info["ref"], body))


async def trash_vfolder(request: web.Request) -> web.Response:
    return json_response(api.Vfolder, await _service(request).trash(user_of(request), request.match_info["ref"]))


async def restore_vfolder(request: web.Request) -> web.Response:
    return json_response(api.Vfolder, await _service(request).restore(user_of(request), request.match_info["ref"]))


async def purge_vfolder(request: web.Request) -> web.Response:
    return json_response(api.Vfolder, await _service(request).purge(user_of(request), request.match_info["ref"]))


async def share_vfolder(request: web.Request) -> web.Response:
    body = await parse_body(request, ShareRequest)
    return json_response(api.Vfolder, await _service(request).share(user_of(request), request.match_info["ref"], body))


async def unshare_vfolder(request: web.Request) -> web.Response:
    view = await _service(request).unshare(user_of(request), request.match_info["ref"], request.match_info["username"])
    return json_response(api.Vfolder, view) if view is not None else web.Response(status=204)


async def vfolder_token(request: web.Request) -> web.Response:
    body = await parse_body(request, TokenRequest)
    return json_response(
        api.VfolderToken, await _service(request).token(user_of(request), request.match_info["ref"], body)
    )
