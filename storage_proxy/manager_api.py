"""Manager-facing API under ``/manager/v1`` (``Authorization: Bearer <manager_secret>``)."""
from __future__ import annotations

import time

from aiohttp import web

from corral.common.errors import NotFound

from .auth import require_manager
from .bodies import CloneVfolderBody, CreateVfolderBody, SetQuotaBody, read_body
from .context import StorageContext, get_context
from corral.common.http_problems import Handler
from .volumes import VolumeBackend
from .volumes.base import check_vfid


@web.middleware
async def manager_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/manager/"):
        require_manager(request, get_context(request).config.manager_secret)
    return await handler(request)


def _vfolder(request: web.Request) -> tuple[StorageContext, VolumeBackend, str]:
    ctx = get_context(request)
    volume = ctx.volume(request.match_info["volume"])
    return ctx, volume, check_vfid(request.match_info["vfid"])


def _vfolder_doc(volume: VolumeBackend, vfid: str) -> dict[str, object]:
    return {"volume": volume.name, "vfid": vfid, "host_path": str(volume.mount_path(vfid))}


async def list_volumes(request: web.Request) -> web.Response:
    ctx = get_context(request)
    return web.json_response({
        "proxy_name": ctx.config.proxy_name,
        "volumes": [volume.describe() for volume in ctx.volumes.values()],
    })


async def create_vfolder(request: web.Request) -> web.Response:
    ctx = get_context(request)
    body = await read_body(request, CreateVfolderBody)
    volume = ctx.volume(body.volume)
    vfid = check_vfid(body.vfid)
    await volume.create_vfolder(vfid, quota_bytes=body.quota_bytes)
    return web.json_response({**_vfolder_doc(volume, vfid), "quota_bytes": body.quota_bytes}, status=201)


async def delete_vfolder(request: web.Request) -> web.Response:
    ctx, volume, vfid = _vfolder(request)
    await volume.delete_vfolder(vfid)
    ctx.quota.forget(volume.name, vfid)
    return web.Response(status=204)


async def clone_vfolder(request: web.Request) -> web.Response:
    _, volume, vfid = _vfolder(request)
    body = await read_body(request, CloneVfolderBody)
    dst = check_vfid(body.dst_vfid)
    await volume.clone_vfolder(vfid, dst)
    return web.json_response(_vfolder_doc(volume, dst), status=201)


async def vfolder_usage(request: web.Request) -> web.Response:
    _, volume, vfid = _vfolder(request)
    started = time.monotonic()
    if not await volume.exists(vfid):
        raise NotFound(f"vfolder {vfid} does not exist on volume {volume.name}")
    totals = await volume.usage(vfid)
    return web.json_response({
        "volume": volume.name, "vfid": vfid, **totals.to_json(),
        "quota_bytes": await volume.get_quota(vfid),
        "over_quota_reason": get_context(request).quota.over_quota_reason(volume.name, vfid),
        "elapsed_s": round(time.monotonic() - started, 3),
    })


async def get_quota(request: web.Request) -> web.Response:
    _, volume, vfid = _vfolder(request)
    return web.json_response({"volume": volume.name, "vfid": vfid, "quota_bytes": await volume.get_quota(vfid)})


async def set_quota(request: web.Request) -> web.Response:
    ctx, volume, vfid = _vfolder(request)
    body = await read_body(request, SetQuotaBody)
    await volume.set_quota(vfid, body.quota_bytes)
    ctx.quota.forget(volume.name, vfid)
    return web.json_response({"volume": volume.name, "vfid": vfid, "quota_bytes": body.quota_bytes})


async def mount_path(request: web.Request) -> web.Response:
    _, volume, vfid = _vfolder(request)
    if not await volume.exists(vfid):
        raise NotFound(f"vfolder {vfid} does not exist on volume {volume.name}")
    return web.json_response(_vfolder_doc(volume, vfid))


def add_manager_routes(app: web.Application, prefix: str = "/manager/v1") -> None:
    app.router.add_get(f"{prefix}/volumes", list_volumes)
    app.router.add_post(f"{prefix}/vfolders", create_vfolder)
    one = f"{prefix}/vfolders/{{volume}}/{{vfid}}"
    app.router.add_delete(one, delete_vfolder)
    app.router.add_post(f"{one}/clone", clone_vfolder)
    app.router.add_get(f"{one}/usage", vfolder_usage)
    app.router.add_get(f"{one}/quota", get_quota)
    app.router.add_put(f"{one}/quota", set_quota)
    app.router.add_get(f"{one}/mount", mount_path)
