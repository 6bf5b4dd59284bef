"""Client-facing file API under ``/client/v1/vfolders/{vfid}/…`` (vfolder JWT)."""
from __future__ import annotations

import asyncio
import base64
import binascii

from aiohttp import web

from corral.common.errors import InvalidRequest
from corral.common.vfolder_token import VfolderClaims

from .auth import require_vfolder_claims
from .bodies import MkdirBody, MoveBody, read_body
from .context import StorageContext, get_context
from .files import VfolderFiles
from .paths import join_parts, parse_vfolder_path
from .transfer import send_archive, send_file
from .tus import add_tus_routes
from .walk_api import tree_handler, usage_handler

DEFAULT_PAGE = 1000
MAX_PAGE = 10000


def vfolder_files(request: web.Request, *, write: bool) -> tuple[StorageContext, VfolderClaims, VfolderFiles]:
    ctx = get_context(request)
    vfid = request.match_info["vfid"]
    claims = require_vfolder_claims(request, ctx.config.jwt_secret, vfid, write=write)
    return ctx, claims, ctx.volume(claims.volume).files(vfid)


def _query_flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def _encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def _decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidRequest("bad cursor") from None


async def list_files(request: web.Request) -> web.Response:
    _, _, files = vfolder_files(request, write=False)
    parts = parse_vfolder_path(request.query.get("path", ""))
    try:
        limit = int(request.query.get("limit", DEFAULT_PAGE))
    except ValueError:
        raise InvalidRequest("limit must be an integer") from None
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}")
    after = _decode_cursor(request.query.get("cursor"))
    page = await asyncio.to_thread(files.list_dir, parts, limit=limit, after=after)
    return web.json_response({
        "path": join_parts(parts),
        "entries": [entry.to_json() for entry in page.entries],
        "next_cursor": _encode_cursor(page.next_cursor) if page.next_cursor else None,
    })


async def stat_file(request: web.Request) -> web.Response:
    _, _, files = vfolder_files(request, write=False)
    parts = parse_vfolder_path(request.query.get("path", ""))
    info = await asyncio.to_thread(files.info, parts)
    doc = info.to_json()
    doc["path"] = join_parts(parts)
    return web.json_response(doc)


async def make_directory(request: web.Request) -> web.Response:
    ctx, claims, files = vfolder_files(request, write=True)
    ctx.quota.refuse_writes_if_over(claims.volume, request.match_info["vfid"])
    body = await read_body(request, MkdirBody)
    parts = parse_vfolder_path(body.path)
    if not parts:
        raise InvalidRequest("the vfolder root always exists")
    await asyncio.to_thread(files.mkdir, parts, parents=body.parents, exist_ok=body.exist_ok)
    return web.json_response({"path": join_parts(parts)}, status=201)


async def move_path(request: web.Request) -> web.Response:
    _, _, files = vfolder_files(request, write=True)
    body = await read_body(request, MoveBody)
    src, dst = parse_vfolder_path(body.src), parse_vfolder_path(body.dst)
    await asyncio.to_thread(files.move, src, dst, overwrite=body.overwrite)
    return web.json_response({"src": join_parts(src), "dst": join_parts(dst)})


async def delete_path(request: web.Request) -> web.Response:
    ctx, claims, files = vfolder_files(request, write=True)
    parts = parse_vfolder_path(request.query.get("path", ""))
    if not parts:
        raise InvalidRequest("cannot delete the vfolder root (ask the manager to delete the vfolder)")
    await asyncio.to_thread(files.delete, parts, recursive=_query_flag(request, "recursive"))
    ctx.quota.forget(claims.volume, request.match_info["vfid"])
    return web.Response(status=204)


async def download(request: web.Request) -> web.StreamResponse:
    _, _, files = vfolder_files(request, write=False)
    parts = parse_vfolder_path(request.query.get("path", ""))
    if not parts:
        raise InvalidRequest("path must name a file (use /archive for directories)")
    return await send_file(request, files, parts)


async def archive(request: web.Request) -> web.StreamResponse:
    _, _, files = vfolder_files(request, write=False)
    parts = parse_vfolder_path(request.query.get("path", ""))
    root_name = parts[-1] if parts else request.match_info["vfid"]
    return await send_archive(request, files, parts, root_name)


def add_client_routes(app: web.Application, prefix: str = "/client/v1") -> None:
    base = f"{prefix}/vfolders/{{vfid}}"
    app.router.add_get(f"{base}/files", list_files)
    app.router.add_delete(f"{base}/files", delete_path)
    app.router.add_get(f"{base}/stat", stat_file)
    app.router.add_post(f"{base}/mkdir", make_directory)
    app.router.add_post(f"{base}/move", move_path)
    app.router.add_get(f"{base}/download", download)
    app.router.add_get(f"{base}/archive", archive)
    app.router.add_get(f"{base}/usage", usage_handler)
    app.router.add_get(f"{base}/tree", tree_handler)
    add_tus_routes(app, prefix)
