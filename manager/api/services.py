"""A session's services through the manager: list and start them, TCP tunnels, the browser app proxy.

No session port is ever published: the manager relays to the kernel's agent, which relays to the
runner's per-service socket inside the container."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from corral.common import api_models as api
from corral.common import http_proxy
from corral.common.errors import (
    AuthenticationFailed, Conflict, InvalidRequest, NotFound, PermissionDenied, SessionServiceFailed,
)
from corral.common.session_status import SessionStatus
from corral.common.signing import SCHEME
from corral.common.tcp_ws_relay import relay_tcp
from corral.common.ws_pipe import pipe
from corral.kernels import services as service_defs

from ..app_auth import COOKIE_NAME, TOKEN_QUERY, AppGrant, cookie_path
from ..auth import AuthUser
from ..db.models import Agent, Session, User
from ..session_access import HTTP, TCP
from ..web_sessions import COOKIE_NAME as WEB_COOKIE_NAME
from .context_access import ctx_of, user_of
from .responses import json_response
from .sessions import kernel_target

READY_WAIT_S = 300.0
TUNNEL_HEARTBEAT_S = 20.0
LOST = "connection to the session was lost"
_DROPPED_HEADERS = ("Authorization", "X-Corral-Date", "X-Corral-Nonce", "X-Corral-Content-SHA256", "X-CSRF-Token")


async def _running_target(request: web.Request) -> tuple[Any, str, str]:
    sess, kernel_id, address = await kernel_target(request)
    if sess.status != SessionStatus.RUNNING:
        raise Conflict(f"session {sess.name} is {sess.status}, not RUNNING", session_status=sess.status)
    return sess, kernel_id, address


def _service_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if name == service_defs.TERMINAL:
        raise InvalidRequest("the terminal is not a TCP service: open /api/v1/sessions/{ref}/terminal")
    if not service_defs.SERVICE_NAME_RE.match(name):
        raise NotFound(f"no service named {name!r} (service names are lowercase letters, digits and '-')")
    return name


def _when(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, tz=timezone.utc) if isinstance(value, (int, float)) else None


def _service_model(session_id: str, info: dict[str, Any]) -> api.SessionService:
    name = str(info.get("name", ""))
    return api.SessionService(
        name=name, protocol=info.get("protocol", "tcp"), port=info.get("port"), start=info.get("start", "lazy"),
        state=info.get("state", "stopped"), error=info.get("error"), log_tail=info.get("log_tail") or "",
        started_at=_when(info.get("started_at")), ready_at=_when(info.get("ready_at")),
        http_path=service_defs.http_base_path(session_id, name) if info.get("protocol") == "http" else None,
    )


async def list_services(request: web.Request) -> web.Response:
    sess, kernel_id, address = await _running_target(request)
    found = await ctx_of(request).agent_client.list_services(address, kernel_id)
    terminal = api.SessionService(name=service_defs.TERMINAL, protocol=service_defs.TERMINAL_PROTOCOL, start="boot",
                                  state=service_defs.READY)
    items = [terminal, *(_service_model(sess.id, info) for info in found)]
    return json_response(api.SessionServiceList, {"services": items})


async def start_service(request: web.Request) -> web.Response:
    name = _service_name(request)
    try:
        wait_s = float(request.query.get("wait_s", "0"))
    except ValueError:
        raise InvalidRequest("wait_s must be a number of seconds") from None
    if not 0 <= wait_s <= READY_WAIT_S:
        raise InvalidRequest(f"wait_s must be between 0 and {READY_WAIT_S:g}")
    sess, kernel_id, address = await _running_target(request)
    info = await ctx_of(request).agent_client.start_service(address, kernel_id, name, wait_s)
    if info.get("state") == service_defs.FAILED:
        raise SessionServiceFailed.not_available(name, info)
    return json_response(api.SessionService, _service_model(sess.id, info))


async def service_tcp(request: web.Request) -> web.StreamResponse:
    # Checked before the upgrade, so a plain GET gets the same answer as a problem document (a refused
    # websocket handshake carries no body: the client asks again without the upgrade to learn why).
    name = _service_name(request)
    sess, kernel_id, address = await _running_target(request)
    ctx = ctx_of(request)
    info = await ctx.agent_client.start_service(address, kernel_id, name, READY_WAIT_S)
    if info.get("state") != service_defs.READY:
        raise SessionServiceFailed.not_available(name, info)
    socket = web.WebSocketResponse(heartbeat=TUNNEL_HEARTBEAT_S, max_msg_size=0, compress=False)
    if not socket.can_prepare(request).ok:
        raise InvalidRequest("this endpoint speaks websocket: send an Upgrade request")
    connect_locally = ctx.local_agents.connector(address)
    if connect_locally is not None:  # the agent runs in this process: relay to the service ourselves
        reader, writer = await connect_locally(kernel_id, name)
        try:
            await socket.prepare(request)
        except BaseException:
            writer.close()
            raise
        await ctx.access.opened(sess.id, user_of(request).user_id, TCP, name)
        async with ctx.access.in_use(sess.id) as traffic:  # traffic keeps the session from idling out
            await relay_tcp(socket, reader, writer, on_traffic=traffic.mark)
        return socket
    upstream = await ctx.agent_client.open_service_tcp(address, kernel_id, name)
    try:
        await socket.prepare(request)
    except BaseException:
        await upstream.close()
        raise
    await ctx.access.opened(sess.id, user_of(request).user_id, TCP, name)
    async with ctx.access.in_use(sess.id) as traffic:
        await pipe(socket, upstream, lost=LOST, on_message=traffic.mark)
    return socket


async def app_token(request: web.Request) -> web.Response:
    """A one-time link for a browser: ``url`` logs it in to this service of this session."""
    name = _service_name(request)
    sess, kernel_id, address = await _running_target(request)
    ctx = ctx_of(request)
    services = {info.get("name"): info for info in await ctx.agent_client.list_services(address, kernel_id)}
    info = services.get(name)
    if info is None:
        known = ", ".join(sorted(str(n) for n in services)) or "none"
        raise NotFound(f"no service named {name!r} (this session has: {known})")
    if info.get("protocol") != "http":
        raise InvalidRequest(f"service {name!r} speaks {info.get('protocol')}, not http: tunnel it (corral app)")
    token, expires = ctx.app_auth.issue_token(AppGrant(user_of(request).user_id, sess.id, name))
    url = f"{service_defs.http_base_path(sess.id, name)}?{TOKEN_QUERY}={token}"
    return json_response(api.AppToken, {"url": url, "token": token, "expires_at": expires})


# -- the browser app proxy ----------------------------------------------------------------------


async def service_http(request: web.Request) -> web.StreamResponse:
    session_id, name = request.match_info["session_id"], _service_name(request)
    ctx = ctx_of(request)
    token = request.query.get(TOKEN_QUERY)
    if token is not None:
        grant = await ctx.app_auth.redeem(token, session_id, name)
        sess, _, _ = await _visible_session(request, grant.user_id, session_id)
        await _browser_signed_in_as_owner(request, sess.owner_id)
        await ctx.access.opened(session_id, grant.user_id, HTTP, name)
        query = request.rel_url.query.copy()
        query.popall(TOKEN_QUERY, None)
        response = web.HTTPSeeOther(location=str(request.rel_url.with_query(query)))
        response.set_cookie(
            COOKIE_NAME, ctx.app_auth.cookie(grant), path=cookie_path(session_id), httponly=True, samesite="Lax",
            secure=request.secure,
        )
        raise response
    user_id, body = await _app_user(request, session_id)
    sess, kernel_id, address = await _visible_session(request, user_id, session_id)
    await _browser_signed_in_as_owner(request, sess.owner_id)
    await ctx.access.touch(sess.id)
    headers = http_proxy.forwarded_headers(request.headers, drop=_DROPPED_HEADERS)
    _strip_app_cookie(headers)
    headers["X-Forwarded-For"] = request.remote or ""
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    tail = http_proxy.raw_tail(request, f"/services/{name}/http/")
    url = ctx.agent_client.service_http_url(address, kernel_id, name, tail)
    if request.rel_url.raw_query_string:
        url = f"{url}?{request.rel_url.raw_query_string}"
    try:
        if http_proxy.is_websocket_upgrade(request):  # an app's websocket: its messages are activity too
            async with ctx.access.in_use(sess.id) as traffic:
                return await http_proxy.forward(request, ctx.agent_client.http, url, headers, body,
                                                on_ws_message=traffic.mark)
        return await http_proxy.forward(request, ctx.agent_client.http, url, headers, body)
    except http_proxy.UpstreamUnreachable as exc:
        raise SessionServiceFailed(f"the agent did not answer for service {name!r}: {exc}", service=name) from None


async def _app_user(request: web.Request, session_id: str) -> tuple[str, bytes | None]:
    """The caller: the app cookie of this session, or a signed API request (then also its body, read
    to check the signature)."""
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie:
        return ctx_of(request).app_auth.check_cookie(cookie, session_id), None
    if request.headers.get("Authorization", "").startswith(SCHEME):
        user: AuthUser = await ctx_of(request).authenticator.authenticate(request)
        return user.user_id, await request.read()
    raise AuthenticationFailed(
        "open this app through a link from `corral app --open` or the web UI (or sign the request)"
    )


async def _browser_signed_in_as_owner(request: web.Request, owner_id: str) -> None:
    """Apps are served from the manager's own origin, so an app's pages can use whatever web UI session the
    browser holds there. A browser signed in to the web UI as anyone but the session's owner (an admin
    included) may not open the app: its code would act with that person's Corral session."""
    cookie = request.cookies.get(WEB_COOKIE_NAME)
    if not cookie:
        return
    signed_in = await ctx_of(request).web_sessions.lookup(cookie)
    if signed_in is not None and signed_in.user.id != owner_id:
        raise PermissionDenied(
            f"this browser is signed in to Corral as {signed_in.user.username}, who does not own this session: "
            "its app would act with that sign-in; open it in a private window (or sign out) instead"
        )


async def _visible_session(request: web.Request, user_id: str, session_id: str) -> tuple[Session, str, str]:
    """The RUNNING session if the user may use it (its owner, or an admin); 404 otherwise."""
    async with ctx_of(request).sessionmaker() as db:
        user = await db.get(User, user_id)
        sess = await db.get(Session, session_id)
        if user is None or sess is None or (sess.owner_id != user.id and user.role != "admin"):
            raise NotFound(f"no session {session_id}")
        if not getattr(user, "is_active", True):
            raise AuthenticationFailed(f"user {user.username} is disabled")
        if sess.status != SessionStatus.RUNNING:
            raise Conflict(f"session {sess.name} is {sess.status}, not RUNNING", session_status=sess.status)
        kernel = sess.kernels[0]
        agent = await db.get(Agent, kernel.agent_id) if kernel.agent_id else None
        return sess, kernel.id, agent.address if agent else ""


def _strip_app_cookie(headers: CIMultiDict[str]) -> None:
    """The app gets its own cookies, never Corral's (the app cookie, the web UI's session)."""
    kept = [
        part.strip()
        for value in headers.popall("Cookie", [])
        for part in value.split(";")
        if part.strip() and part.split("=", 1)[0].strip() not in (COOKIE_NAME, WEB_COOKIE_NAME)
    ]
    if kept:
        headers["Cookie"] = "; ".join(kept)
