"""The storage proxies' client file API, relayed through the manager for the web UI.

``/api/v1/storage-proxies/{proxy}/client/v1/{tail}`` → ``{client_url}/client/v1/{tail}`` of that proxy,
any method, query string kept, bodies streamed both ways (no buffering: uploads of any size pass
through with back-pressure, and an aborted browser request aborts the upstream one, so a tus upload
keeps what arrived and resumes from there).

Why a relay rather than CORS on the proxy: the UI's Content-Security-Policy allows ``connect-src
'self'`` only, the proxy's client API may listen on an address the browser cannot reach, and the UI
needs no per-proxy origin configuration. The vfolder token still authorizes every file operation
(``Authorization: Bearer …``, or ``?token=`` on downloads); the relay additionally requires the
caller's web session cookie (with ``X-CSRF-Token`` on anything but GET/HEAD/OPTIONS), so it is a
web-UI path only — the CLI talks to proxies directly.
"""
from __future__ import annotations

from typing import AsyncIterator

import aiohttp
from aiohttp import web

from corral.common.errors import ServiceUnavailable

from .context_access import ctx_of

PREFIX = "/api/v1/storage-proxies"
UPSTREAM_PREFIX = "/client/v1/"
CLIENT_KEY = web.AppKey("storage_relay_client", aiohttp.ClientSession)
PIECE = 1 << 20
# Request headers passed to the proxy; everything else (cookies first of all) stays here.
FORWARD_REQUEST = {
    "authorization", "content-type", "content-length", "range", "if-range", "accept", "tus-resumable",
    "upload-length", "upload-offset", "upload-metadata", "upload-checksum", "upload-defer-length",
    "upload-concat",
}
# Response headers passed back to the browser.
FORWARD_RESPONSE = {
    "content-type", "content-length", "content-encoding", "content-disposition", "content-range", "accept-ranges", "etag",
    "last-modified", "cache-control", "location", "tus-resumable", "tus-version", "tus-extension",
    "tus-max-size", "tus-checksum-algorithm", "upload-offset", "upload-length", "upload-expires",
    "upload-metadata",
}


def relay_path(proxy: str) -> str:
    return f"{PREFIX}/{proxy}/client/v1/"


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    while True:
        piece = await request.content.read(PIECE)
        if not piece:
            return
        yield piece


async def relay_client_api(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    # The Authorization header carries the vfolder token, so this is the cookie session's check alone.
    await ctx.authenticator.authenticate_cookie(request)
    name = request.match_info["proxy"]
    proxy = await ctx.vfolders.proxies.get(name)
    url = proxy.client_url.rstrip("/") + UPSTREAM_PREFIX + request.match_info["tail"]
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARD_REQUEST}
    has_body = request.body_exists and request.method not in ("GET", "HEAD", "OPTIONS")
    client = request.app[CLIENT_KEY]
    try:
        upstream = await client.request(
            request.method, url, params=request.rel_url.query, headers=headers,
            data=_body(request) if has_body else None, allow_redirects=False,
        )
    except aiohttp.ClientError as exc:
        raise ServiceUnavailable(f"storage proxy {name} is unreachable: {exc}", proxy=name) from None
    async with upstream:
        out = {k: v for k, v in upstream.headers.items() if k.lower() in FORWARD_RESPONSE}
        location = out.get("Location")
        if location and location.startswith(UPSTREAM_PREFIX):
            out["Location"] = relay_path(name) + location[len(UPSTREAM_PREFIX):]
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=out)
        if "Content-Length" not in out and request.method != "HEAD" and upstream.status not in (204, 304):
            response.enable_chunked_encoding()
        await response.prepare(request)
        if request.method != "HEAD":
            async for piece in upstream.content.iter_chunked(PIECE):
                await response.write(piece)
        await response.write_eof()
        return response


def add_storage_relay_routes(app: web.Application) -> None:
    async def client_session(app: web.Application) -> AsyncIterator[None]:
        # No overall timeout: a large upload or download may take long; only connecting is bounded.
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10)
        app[CLIENT_KEY] = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        yield
        await app[CLIENT_KEY].close()

    app.cleanup_ctx.append(client_session)  # the route itself is in the Route table (manager/api/app.py)
