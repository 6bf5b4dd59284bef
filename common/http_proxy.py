"""A streaming reverse HTTP proxy hop, websocket upgrades included (manager → agent → session app).

Bodies stream both ways with the event loop's flow control, so a large upload or download never
sits in memory; compressed bodies pass through untouched; hop-by-hop headers stop at each hop.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .ws_pipe import pipe

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade",
})
WEBSOCKET_HANDSHAKE = frozenset({
    "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol",
    "sec-websocket-accept",
})
HEARTBEAT_S = 30.0
_CHUNK = 64 * 1024


class UpstreamUnreachable(Exception):
    """The next hop did not answer (refused, reset, closed before a response)."""


def is_websocket_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in (
        request.headers.get("Connection", "").lower()
    )


def forwarded_headers(headers: CIMultiDictProxy[str], drop: Iterable[str] = ()) -> CIMultiDict[str]:
    """``headers`` without hop-by-hop ones (and those the Connection header names) or ``drop``."""
    dropped = set(HOP_BY_HOP) | {name.lower() for name in drop}
    dropped |= {token.strip().lower() for token in headers.get("Connection", "").split(",") if token.strip()}
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in dropped)


def raw_tail(request: web.Request, marker: str) -> str:
    """The still-encoded path after ``marker`` (the part a proxy route's ``{tail}`` matched)."""
    raw = request.rel_url.raw_path
    index = raw.find(marker)
    return raw[index + len(marker):] if index >= 0 else ""


async def forward(
    request: web.Request, client: aiohttp.ClientSession, url: str | URL, headers: CIMultiDict[str],
    body: bytes | None = None, on_ws_message: Callable[[], None] | None = None,
) -> web.StreamResponse:
    """Sends ``request`` on to ``url`` and streams the answer back (a websocket is piped both ways).
    ``body``: the request's body when it was read already (to check a signature); else it streams.
    ``on_ws_message``: hears of every message of a piped websocket (cheap: it runs per message).

    Raises ``UpstreamUnreachable`` when nothing answered, before anything was sent back."""
    if is_websocket_upgrade(request):
        return await _forward_websocket(request, client, url, headers, on_ws_message)
    data: object = body if body is not None else (request.content if request.body_exists else None)
    try:
        upstream = await client.request(
            request.method, url, headers=headers, data=data, allow_redirects=False, auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
        )
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise UpstreamUnreachable(str(exc) or type(exc).__name__) from None
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                response.headers.add(name, value)
        if upstream.content_length is not None and "Content-Encoding" not in response.headers:
            response.content_length = upstream.content_length
        elif upstream.content_length is not None:
            response.headers["Content-Length"] = str(upstream.content_length)
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(_CHUNK):
            await response.write(chunk)
        await response.write_eof()
    return response


async def _forward_websocket(
    request: web.Request, client: aiohttp.ClientSession, url: str | URL, headers: CIMultiDict[str],
    on_message: Callable[[], None] | None = None,
) -> web.StreamResponse:
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    for name in WEBSOCKET_HANDSHAKE:
        headers.popall(name, None)
    try:
        upstream = await client.ws_connect(
            url, headers=headers, protocols=protocols, heartbeat=HEARTBEAT_S, max_msg_size=0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
        )
    except aiohttp.WSServerHandshakeError as exc:
        return web.Response(status=exc.status or 502, text=f"the app refused the websocket: {exc.message}\n")
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise UpstreamUnreachable(str(exc) or type(exc).__name__) from None
    downstream = web.WebSocketResponse(
        protocols=[upstream.protocol] if upstream.protocol else (), heartbeat=HEARTBEAT_S, max_msg_size=0,
    )
    try:
        await downstream.prepare(request)
    except BaseException:
        await upstream.close()
        raise
    await pipe(downstream, upstream, on_message=on_message)
    return downstream
