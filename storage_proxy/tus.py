"""tus 1.0.0 resumable uploads (core + creation, checksum, termination, expiration).

Routes, under ``/client/v1/vfolders/{vfid}/uploads``:

- ``OPTIONS …/uploads`` — discovery (no auth): versions, extensions, algorithms.
- ``POST …/uploads`` — create: ``Upload-Length`` and ``Upload-Metadata`` with
  ``path`` (destination inside the vfolder). Quota is checked here (413).
- ``HEAD …/uploads/{id}`` — current ``Upload-Offset``.
- ``PATCH …/uploads/{id}`` — append at ``Upload-Offset``
  (``Content-Type: application/offset+octet-stream``, optional
  ``Upload-Checksum: sha1 <base64>``); the last byte installs the file.
- ``DELETE …/uploads/{id}`` — terminate.

Spec: https://tus.io/protocols/resumable-upload
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import functools
import logging
import os
from typing import AsyncIterator, Awaitable, Callable

from aiohttp import web

from corral.common.errors import Conflict, CorralError, InvalidRequest
from corral.common.vfolder_token import VfolderClaims

from .auth import require_vfolder_claims
from .context import StorageContext, get_context
from .errors import TusVersionUnsupported, UnsupportedMediaType
from .paths import join_parts, parse_vfolder_path
from .uploads import CHECKSUM_ALGORITHMS, ChunkChecksum, UploadInfo

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,checksum,termination,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
READ_PIECE = 1 << 20

TusHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _tus_headers(**extra: str) -> dict[str, str]:
    headers = {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store"}
    headers.update(extra)
    return headers


def tus_endpoint(handler: TusHandler) -> TusHandler:
    """Check ``Tus-Resumable`` and stamp it on every answer, errors included."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            if request.headers.get("Tus-Resumable") != TUS_VERSION:
                exc = TusVersionUnsupported(f"this server speaks tus {TUS_VERSION}; send 'Tus-Resumable: {TUS_VERSION}'")
                exc.headers = _tus_headers(**{"Tus-Version": TUS_VERSION})  # type: ignore[attr-defined]
                raise exc
            return await handler(request)
        except CorralError as exc:
            headers = dict(getattr(exc, "headers", None) or {})
            headers.update(_tus_headers())
            exc.headers = headers  # type: ignore[attr-defined]
            raise

    return wrapper


def _http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def parse_upload_metadata(header: str) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        if not key or key in metadata:
            raise InvalidRequest("malformed Upload-Metadata")
        try:
            metadata[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value else ""
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidRequest(f"Upload-Metadata value for {key!r} is not base64 UTF-8") from None
    return metadata


def _int_header(request: web.Request, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None:
        raise InvalidRequest(f"missing {name} header")
    if not raw.isdigit():
        raise InvalidRequest(f"{name} must be a non-negative integer")
    return int(raw)


def _authorize(request: web.Request, ctx: StorageContext) -> tuple[VfolderClaims, str]:
    vfid = request.match_info["vfid"]
    claims = require_vfolder_claims(request, ctx.config.jwt_secret, vfid, write=True)
    ctx.volume(claims.volume)
    return claims, vfid


async def tus_options(request: web.Request) -> web.Response:
    ctx = get_context(request)
    headers = _tus_headers(**{
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": TUS_EXTENSIONS,
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    })
    if ctx.config.upload.max_size:
        headers["Tus-Max-Size"] = str(ctx.config.upload.max_size)
    return web.Response(status=204, headers=headers)


@tus_endpoint
async def tus_create(request: web.Request) -> web.Response:
    ctx = get_context(request)
    claims, vfid = _authorize(request, ctx)
    if "Upload-Defer-Length" in request.headers:
        raise InvalidRequest("Upload-Defer-Length is not supported; send Upload-Length")
    length = _int_header(request, "Upload-Length")
    if request.content_length:
        raise InvalidRequest("creation-with-upload is not supported; PATCH after creating")
    metadata = parse_upload_metadata(request.headers.get("Upload-Metadata", ""))
    if "path" not in metadata:
        raise InvalidRequest("Upload-Metadata must carry 'path' (destination inside the vfolder)")
    parts = parse_vfolder_path(metadata["path"])
    volume = ctx.volume(claims.volume)
    files = volume.files(vfid)
    await asyncio.to_thread(files.check_upload_target, parts)
    # Check and reserve under one lock, so two uploads created at once cannot both pass.
    async with ctx.quota.admission(claims.volume, vfid):
        await ctx.quota.check_upload(claims.volume, vfid, length, claims.quota_bytes)
        info = await ctx.uploads.create(
            volume=claims.volume, vfid=vfid, path=join_parts(parts), length=length, user=claims.user, metadata=metadata
        )
    if length == 0:
        await ctx.uploads.complete(info, functools.partial(_install, ctx))
    location = f"/client/v1/vfolders/{vfid}/uploads/{info.id}"
    return web.Response(
        status=201,
        headers=_tus_headers(Location=location, **{"Upload-Expires": _http_date(info.expires_at), "Upload-Offset": "0"}),
    )


@tus_endpoint
async def tus_head(request: web.Request) -> web.Response:
    ctx = get_context(request)
    claims, vfid = _authorize(request, ctx)
    info = await ctx.uploads.get(claims.volume, vfid, request.match_info["upload_id"])
    async with ctx.uploads.locked(info.id):
        offset = await ctx.uploads.offset(info)
    return web.Response(
        status=200,
        headers=_tus_headers(**{
            "Upload-Offset": str(offset),
            "Upload-Length": str(info.length),
            "Upload-Expires": _http_date(info.expires_at),
        }),
    )


async def _body_pieces(request: web.Request) -> AsyncIterator[bytes]:
    while True:
        piece = await request.content.readany()
        if not piece:
            if not request.content.is_eof():
                raise ConnectionResetError("request body ended early")
            return
        yield piece


async def _install(ctx: StorageContext, info: UploadInfo, staged: os.PathLike[str]) -> None:
    volume = ctx.volume(info.volume)
    mtime_ns = _client_mtime_ns(info.metadata)
    if mtime_ns is not None:
        # Keep the client's modification time, so a re-upload can skip unchanged files.
        await asyncio.to_thread(os.utime, staged, ns=(mtime_ns, mtime_ns))
    await asyncio.to_thread(volume.files(info.vfid).install, staged, info.parts())
    ctx.quota.add(info.volume, info.vfid, info.length)


def _client_mtime_ns(metadata: dict[str, str]) -> int | None:
    """The optional ``mtime_ns`` upload metadata, if it is a sane timestamp."""
    raw = metadata.get("mtime_ns", "")
    if not raw.isdigit():
        return None
    value = int(raw)
    return value if 0 < value < 2**63 else None


@tus_endpoint
async def tus_patch(request: web.Request) -> web.Response:
    ctx = get_context(request)
    claims, vfid = _authorize(request, ctx)
    if request.content_type != OFFSET_CONTENT_TYPE:
        raise UnsupportedMediaType(f"PATCH needs Content-Type: {OFFSET_CONTENT_TYPE}")
    offset = _int_header(request, "Upload-Offset")
    checksum_header = request.headers.get("Upload-Checksum")
    checksum = ChunkChecksum.parse(checksum_header) if checksum_header else None
    info = await ctx.uploads.get(claims.volume, vfid, request.match_info["upload_id"])
    async with ctx.uploads.locked(info.id):
        current = await ctx.uploads.offset(info)
        if offset != current:
            exc = Conflict(f"Upload-Offset is {offset} but the upload is at {current}", upload_offset=current)
            exc.headers = _tus_headers(**{"Upload-Offset": str(current)})  # type: ignore[attr-defined]
            raise exc
        if request.content_length is not None and request.content_length > info.length - current:
            raise InvalidRequest("body goes past Upload-Length")
        new_offset = current
        if not info.completed:
            new_offset = await ctx.uploads.append(info, current, _body_pieces(request), checksum)
            if new_offset == info.length:
                await ctx.uploads.complete(info, functools.partial(_install, ctx))
    return web.Response(
        status=204,
        headers=_tus_headers(**{"Upload-Offset": str(new_offset), "Upload-Expires": _http_date(info.expires_at)}),
    )


@tus_endpoint
async def tus_delete(request: web.Request) -> web.Response:
    ctx = get_context(request)
    claims, vfid = _authorize(request, ctx)
    info = await ctx.uploads.get(claims.volume, vfid, request.match_info["upload_id"])
    async with ctx.uploads.locked(info.id):
        await ctx.uploads.terminate(info)
    return web.Response(status=204, headers=_tus_headers())


def add_tus_routes(app: web.Application, prefix: str) -> None:
    base = f"{prefix}/vfolders/{{vfid}}/uploads"
    app.router.add_route("OPTIONS", base, tus_options)
    app.router.add_post(base, tus_create)
    app.router.add_route("HEAD", base + "/{upload_id}", tus_head)
    app.router.add_patch(base + "/{upload_id}", tus_patch)
    app.router.add_delete(base + "/{upload_id}", tus_delete)
