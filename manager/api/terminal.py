"""The terminal websocket of a session: a shell in its main kernel, relayed through its agent."""
from __future__ import annotations

import re

from aiohttp import web

from corral.common.errors import Conflict, InvalidRequest
from corral.common.session_status import SessionStatus
from corral.common.terminal_protocol import HEARTBEAT_S, MAX_MESSAGE, TerminalSize

from ..session_access import TERMINAL
from .context_access import ctx_of, user_of
from .sessions import kernel_target
from .ws_relay import relay

PTY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


async def session_terminal(request: web.Request) -> web.StreamResponse:
    size = TerminalSize.from_query(request.query)
    attach = request.query.get("attach") or None
    if attach is not None and not PTY_ID_RE.match(attach):
        raise InvalidRequest("attach must be the pty id a previous connection was given")
    # Checked before the upgrade, so a plain GET gets the same answer as a problem document
    # (a refused websocket handshake carries no body; the client asks again to learn why).
    sess, kernel_id, address = await kernel_target(request)
    if sess.status != SessionStatus.RUNNING:
        raise Conflict(f"session {sess.name} is {sess.status}, not RUNNING", session_status=sess.status)
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=MAX_MESSAGE)
    if not socket.can_prepare(request).ok:
        raise InvalidRequest("this endpoint speaks websocket: send an Upgrade request")
    upstream = await ctx_of(request).agent_client.open_terminal(address, kernel_id, size, attach)
    try:
        await socket.prepare(request)
    except BaseException:
        await upstream.close()
        raise
    access = ctx_of(request).access
    await access.opened(sess.id, user_of(request).user_id, TERMINAL)
    async with access.in_use(sess.id) as traffic:  # typing and output keep the session from idling out
        await relay(socket, upstream, on_message=traffic.mark)
    return socket
