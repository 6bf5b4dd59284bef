"""Session endpoints: create, list, info, destroy, execute, interrupt, logs, events."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from corral.common import api_models as api
from corral.common.api_models.sessions import Interrupted
from corral.common.cluster import kernel_index, kernel_name
from corral.common.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from corral.common.ndjson_response import stream_ndjson

from ..db.models import Agent, Kernel, Session, SessionStatusChange
from ..events import SessionProgressEvent, SessionStatusEvent
from ..session_requests import CreateSessionRequest
from ..session_service import SessionService
from ..session_views import status_change_view
from ..states import TERMINAL, SessionStatus
from . import cluster_logs
from .context_access import ctx_of, service_of, user_of
from .responses import json_response, to_json
from corral.common.request_body import parse_body

SSE_KEEPALIVE_S = 15.0
SSE_POLL_S = 1.0
LIST_SSE_BATCH = 500  # status changes read per query by the list-level stream
LOGS_FOLLOW_CHECK_S = 5.0  # how often a silent `logs?follow=1` checks that its follower is still there


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=1 << 20)


async def create_session(request: web.Request) -> web.Response:
    body = await parse_body(request, CreateSessionRequest)
    view = await service_of(request).create(user_of(request), body)
    return json_response(api.Session, view, status=201)


async def list_sessions(request: web.Request) -> web.Response:
    statuses = [s.strip().upper() for s in request.query.get("status", "").split(",") if s.strip()]
    unknown = [s for s in statuses if s not in SessionStatus.__members__]
    if unknown:
        raise InvalidRequest(f"unknown status {unknown[0]!r}; known: {', '.join(SessionStatus.__members__)}")
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise InvalidRequest("limit must be a whole number") from None
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit must be between 1 and 1000")
    include_terminated = request.query.get("all", "0").lower() in ("1", "true", "yes")
    all_users = request.query.get("all_users", "0").lower() in ("1", "true", "yes")
    items, cursor = await service_of(request).list(
        user_of(request), statuses or None, include_terminated, limit, request.query.get("cursor"),
        all_users=all_users,
    )
    return json_response(api.SessionPage, {"items": items, "next_cursor": cursor})


async def get_session(request: web.Request) -> web.Response:
    return json_response(api.Session, await service_of(request).info(user_of(request), request.match_info["ref"]))


async def destroy_session(request: web.Request) -> web.Response:
    """Idempotent: an already-ended session is answered 200 with its final state."""
    view, final = await service_of(request).destroy(user_of(request), request.match_info["ref"])
    return json_response(api.Session, view, status=200 if final else 202)


KERNEL_QUERY = ("kernel", "which kernel of a cluster session: main1 (the default), sub1 …")


def chosen_kernel(sess: Session, request: web.Request) -> Kernel:
    """The kernel ``?kernel=NAME`` names (main1 when left out); 404 for a name the session has not."""
    name = request.query.get("kernel", "main1") or "main1"
    idx = kernel_index(name)
    kernel = next((k for k in sess.kernels if k.cluster_idx == idx), None) if idx is not None else None
    if kernel is None:
        names = ", ".join(kernel_name(k.cluster_idx) for k in sess.kernels)
        raise NotFound(f"session {sess.name} has no kernel {name!r} (it has {names})")
    return kernel


async def _kernel_address(db: Any, sess: Session, request: web.Request) -> tuple[str, str]:
    """The chosen kernel's id and its agent's address ("" when it has none)."""
    kernel = chosen_kernel(sess, request)
    agent = await db.get(Agent, kernel.agent_id) if kernel.agent_id else None
    return kernel.id, agent.address if agent else ""


async def kernel_target(request: web.Request) -> tuple[Any, str, str]:
    """The session's main kernel (or the one ``?kernel=`` names) and the address of its agent."""
    service: SessionService = service_of(request)
    async with ctx_of(request).sessionmaker() as db:
        sess = await service.resolve(db, user_of(request), request.match_info["ref"])
        return (sess, *await _kernel_address(db, sess, request))


async def execute_code(request: web.Request) -> web.StreamResponse:
    body = await parse_body(request, ExecuteRequest)
    sess, kernel_id, address = await kernel_target(request)
    if sess.status != SessionStatus.RUNNING:
        raise Conflict(f"session {sess.name} is {sess.status}, not RUNNING", session_status=sess.status)
    access = ctx_of(request).access
    await access.touch(sess.id, force=True)
    # Running code is activity for as long as it runs: the idle time counts from its end.
    async with access.in_use(sess.id, busy=True):
        return await stream_ndjson(request, ctx_of(request).agent_client.execute(address, kernel_id, body.code))


async def interrupt_session(request: web.Request) -> web.Response:
    """SIGINT to the code running in the session's interpreter (its execute then ends ``interrupted``)."""
    sess, kernel_id, address = await kernel_target(request)
    if sess.status != SessionStatus.RUNNING:
        raise Conflict(f"session {sess.name} is {sess.status}, not RUNNING", session_status=sess.status)
    await ctx_of(request).access.touch(sess.id, force=True)
    interrupted = await ctx_of(request).agent_client.interrupt_kernel(address, kernel_id)
    return json_response(Interrupted, {"interrupted": interrupted})


def _wants_follow(request: web.Request) -> bool:
    follow = request.query.get("follow", "0").lower()
    if follow not in ("0", "1", "true", "false", "yes", "no", ""):
        raise InvalidRequest("follow must be 1 or 0")
    return follow in ("1", "true", "yes")


async def _logs_target(request: web.Request) -> tuple[Any, list[cluster_logs.KernelSource] | None, str, str]:
    """Whose output a logs request wants, resolving the session once: every kernel's sources for a cluster
    session when no ``?kernel=`` picks one, else (as `kernel_target`) one kernel and its agent's address."""
    async with ctx_of(request).sessionmaker() as db:
        sess = await service_of(request).resolve(db, user_of(request), request.match_info["ref"])
        if cluster_logs.is_cluster(sess) and not request.query.get("kernel"):
            return sess, await cluster_logs.kernel_sources(db, sess), "", ""
        return (sess, None, *await _kernel_address(db, sess, request))


async def follow_session_logs(request: web.Request) -> web.StreamResponse:
    """``?follow=1``: text/plain, the container's output so far then live until the session ends."""
    sess, sources, kernel_id, address = await _logs_target(request)
    if sources is not None:
        chunks = cluster_logs.follow_all(ctx_of(request).agent_client, sources,
                                         cluster_logs.stored_after_end(ctx_of(request).sessionmaker))
        await anext(chunks)
        return await _stream_text(request, chunks)
    if sess.status in (SessionStatus.RUNNING, SessionStatus.TERMINATING) and address:
        chunks = ctx_of(request).agent_client.follow_kernel_logs(address, kernel_id)
        await anext(chunks)  # the agent accepted: its errors are answered as problems before this
    else:
        async with ctx_of(request).sessionmaker() as db:
            stored = (await db.get(Kernel, kernel_id)).last_logs or ""  # type: ignore[union-attr]
        chunks = _one_chunk(stored)
    return await _stream_text(request, chunks)


async def _stream_text(request: web.Request, chunks: Any) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    try:
        await _relay_text(request, chunks, response)
    except ConnectionResetError:
        return response  # the follower hung up
    finally:
        await chunks.aclose()
    await response.write_eof()
    return response


async def _relay_text(request: web.Request, chunks: Any, response: web.StreamResponse) -> None:
    """Writes each chunk; notices a follower that hung up even while no output comes."""
    pending = asyncio.ensure_future(anext(chunks, None))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=LOGS_FOLLOW_CHECK_S)
            if not done:
                if request.transport is None or request.transport.is_closing():
                    return
                continue
            chunk = pending.result()
            if chunk is None:
                return
            if chunk:
                await response.write(chunk.encode())
            pending = asyncio.ensure_future(anext(chunks, None))
    finally:
        if not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


async def _one_chunk(text: str) -> Any:
    yield text


async def session_logs(request: web.Request) -> web.StreamResponse:
    if _wants_follow(request):
        return await follow_session_logs(request)
    sess, sources, kernel_id, address = await _logs_target(request)
    if sources is not None:
        return json_response(api.SessionLogs, {"logs": await cluster_logs.all_logs(ctx_of(request).agent_client,
                                                                                   sources)})
    if sess.status in (SessionStatus.RUNNING, SessionStatus.TERMINATING) and address:
        logs = await ctx_of(request).agent_client.kernel_logs(address, kernel_id)
    else:
        async with ctx_of(request).sessionmaker() as db:
            logs = (await db.get(Kernel, kernel_id)).last_logs or ""  # type: ignore[union-attr]
    return json_response(api.SessionLogs, {"logs": logs})


async def session_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the full status history, then live changes until the session ends."""
    ctx = ctx_of(request)
    async with ctx.sessionmaker() as db:
        sess = await service_of(request).resolve(db, user_of(request), request.match_info["ref"])
        session_id = sess.id
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    try:
        await _stream_status_changes(ctx, session_id, response)
    except ConnectionResetError:
        return response  # the client has what it wanted and hung up
    await response.write_eof()
    return response


async def _stream_status_changes(ctx: Any, session_id: str, response: web.StreamResponse) -> None:
    last_id = 0
    idle = 0.0
    with ctx.hub.subscribe() as subscription:
        while True:
            async with ctx.sessionmaker() as db:
                changes = (
                    await db.scalars(
                        select(SessionStatusChange)
                        .where(SessionStatusChange.session_id == session_id, SessionStatusChange.id > last_id)
                        .order_by(SessionStatusChange.id)
                    )
                ).all()
            for change in changes:
                last_id = change.id
                payload = json.dumps(status_change_view(change))  # built by api.StatusChange
                await response.write(f"id: {change.id}\nevent: status\ndata: {payload}\n\n".encode())
            if changes and changes[-1].status in TERMINAL:
                break
            if changes:
                idle = 0.0
            try:
                event = await _wait_for_session(subscription.queue, session_id, SSE_POLL_S)
            except TimeoutError:
                idle += SSE_POLL_S
                if idle >= SSE_KEEPALIVE_S:
                    await response.write(b": keepalive\n\n")
                    idle = 0.0
                continue
            if isinstance(event, SessionProgressEvent):
                # Ephemeral, so no ``id:`` (a reconnect resumes from the last status change).
                data = json.dumps(to_json(api.StatusChange, event.to_json()))
                await response.write(f"event: progress\ndata: {data}\n\n".encode())
                idle = 0.0


async def _wait_for_session(queue: asyncio.Queue[Any], session_id: str, timeout: float) -> Any:
    """The next hub event about this session (a status change is read back from the table)."""
    async with asyncio.timeout(timeout):
        while (event := await queue.get()).session_id != session_id:
            pass
        return event


async def sessions_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: every status change of the caller's sessions (every user's with
    ``all_users=1``, admins only) from now on, until the client hangs up.

    The hub wakes the stream at once when this manager records a change; the status history
    table is also read every SSE_POLL_S, so changes recorded by other managers arrive too.
    Each event carries the history row's ``id:``, so a reconnecting EventSource (Last-Event-ID)
    resumes where it left off.
    """
    user = user_of(request)
    all_users = request.query.get("all_users", "0").lower() in ("1", "true", "yes")
    if all_users and not user.is_admin:
        raise PermissionDenied("only admins can follow other users' sessions (all_users)")
    owner_id = None if all_users else user.user_id
    ctx = ctx_of(request)
    last_event = request.headers.get("Last-Event-ID", "").strip()
    with ctx.hub.subscribe() as subscription:  # before reading where "now" is, so nothing falls in between
        if last_event.isdigit():
            last_id = int(last_event)
        else:
            async with ctx.sessionmaker() as db:
                last_id = await db.scalar(select(func.max(SessionStatusChange.id))) or 0
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        try:
            await response.write(b": subscribed\n\n")  # a comment: the stream is live from here on
            await _stream_list_changes(ctx, owner_id, last_id, subscription.queue, response)
        except ConnectionResetError:
            pass  # the client hung up
    return response


async def _stream_list_changes(
    ctx: Any, owner_id: str | None, last_id: int, queue: asyncio.Queue[Any], response: web.StreamResponse
) -> None:
    idle = 0.0
    while True:
        query = select(SessionStatusChange).where(SessionStatusChange.id > last_id)
        if owner_id is not None:
            query = query.join(Session, Session.id == SessionStatusChange.session_id).where(
                Session.owner_id == owner_id
            )
        async with ctx.sessionmaker() as db:
            changes = (await db.scalars(query.order_by(SessionStatusChange.id).limit(LIST_SSE_BATCH))).all()
        if changes:
            chunk = "".join(
                f"id: {change.id}\nevent: status\ndata: {json.dumps(status_change_view(change))}\n\n"
                for change in changes
            )
            last_id = changes[-1].id
            await response.write(chunk.encode())
            idle = 0.0
            if len(changes) == LIST_SSE_BATCH:
                continue  # more to read at once
        try:
            await _wait_for_status_of(queue, owner_id, SSE_POLL_S)
        except TimeoutError:
            idle += SSE_POLL_S
            if idle >= SSE_KEEPALIVE_S:
                await response.write(b": keepalive\n\n")
                idle = 0.0


async def _wait_for_status_of(queue: asyncio.Queue[Any], owner_id: str | None, timeout: float) -> None:
    """Until the hub reports a status change of ``owner_id``'s sessions (anyone's with None); then the
    events already queued are dropped too, since one read of the table picks them all up."""
    async with asyncio.timeout(timeout):
        while True:
            event = await queue.get()
            if isinstance(event, SessionStatusEvent) and (owner_id is None or event.owner_id == owner_id):
                break
    while not queue.empty():
        queue.get_nowait()
