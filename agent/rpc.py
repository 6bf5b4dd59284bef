"""The agent's HTTP RPC API for the manager (cluster secret)."""
from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from corral.common.cluster_secret import check_bearer
from corral.common.http_problems import make_problem_middleware
from corral.common.ndjson_response import stream_ndjson
from corral.common.request_body import parse_body
from corral.common.version import VERSION

from corral.common.terminal_protocol import HEARTBEAT_S, MAX_MESSAGE, TerminalSize

from . import runner_client
from .kernel_spec import KernelSpec
from .kernels import KernelManager
from .service_rpc import add_service_routes
from .terminal_relay import relay_pty

KERNELS_KEY = web.AppKey("corral.kernels", KernelManager)
SECRET_KEY = web.AppKey("corral.secret", str)


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=1 << 20)


def _authorize(request: web.Request) -> None:
    check_bearer(request.headers, request.app[SECRET_KEY])


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": VERSION})


async def create_kernel(request: web.Request) -> web.Response:
    _authorize(request)
    spec = await parse_body(request, KernelSpec)
    record = await request.app[KERNELS_KEY].create(spec)  # type: ignore[arg-type]
    return web.json_response(record.report(), status=202)


async def destroy_kernel(request: web.Request) -> web.Response:
    _authorize(request)
    reason = request.query.get("reason", "destroyed by the manager")
    return web.json_response(await request.app[KERNELS_KEY].destroy(request.match_info["kernel_id"], reason))


async def kernel_logs(request: web.Request) -> web.Response:
    _authorize(request)
    return web.json_response({"logs": await request.app[KERNELS_KEY].logs(request.match_info["kernel_id"])})


async def execute(request: web.Request) -> web.StreamResponse:
    _authorize(request)
    body = await parse_body(request, ExecuteBody)
    events = request.app[KERNELS_KEY].execute(request.match_info["kernel_id"], body.code)  # type: ignore[attr-defined]
    return await stream_ndjson(request, events)


async def interrupt(request: web.Request) -> web.Response:
    """SIGINT to the code running in the kernel's interpreter: ``{"interrupted": bool}`` (false: nothing ran)."""
    _authorize(request)
    interrupted = await request.app[KERNELS_KEY].interrupt(request.match_info["kernel_id"])
    return web.json_response({"interrupted": interrupted})


async def kernel_logs_follow(request: web.Request) -> web.StreamResponse | web.Response:
    """``?follow=1``: the container's output as text/plain, live until the container ends."""
    if request.query.get("follow", "0").lower() not in ("1", "true", "yes"):
        return await kernel_logs(request)
    _authorize(request)
    # Raises NotFound (a problem answer) before anything is streamed.
    chunks = request.app[KERNELS_KEY].follow_logs(request.match_info["kernel_id"], request.query.get("tail", "all"))
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    try:
        async for chunk in chunks:
            await response.write(chunk.encode())
    except ConnectionResetError:
        return response
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    await response.write_eof()
    return response


async def terminal(request: web.Request) -> web.StreamResponse:
    """A shell in the kernel's container (websocket, `corral.common.terminal_protocol`)."""
    _authorize(request)
    size = TerminalSize.from_query(request.query)
    socket_path = request.app[KERNELS_KEY].runner_socket(request.match_info["kernel_id"])
    pty = await runner_client.open_pty(socket_path, size.rows, size.cols, attach=request.query.get("attach") or None)
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=MAX_MESSAGE)
    try:
        await socket.prepare(request)
    except BaseException:
        await pty.close()
        raise
    await relay_pty(socket, pty)
    return socket


def create_rpc_app(kernels: KernelManager, cluster_secret: str) -> web.Application:
    app = web.Application(middlewares=[make_problem_middleware("agent")], client_max_size=4 << 20)
    app[KERNELS_KEY] = kernels
    app[SECRET_KEY] = cluster_secret
    app.router.add_get("/rpc/v1/health", health)
    app.router.add_post("/rpc/v1/kernels", create_kernel)
    app.router.add_delete("/rpc/v1/kernels/{kernel_id}", destroy_kernel)
    app.router.add_get("/rpc/v1/kernels/{kernel_id}/logs", kernel_logs_follow)
    app.router.add_post("/rpc/v1/kernels/{kernel_id}/interrupt", interrupt)
    app.router.add_post("/rpc/v1/kernels/{kernel_id}/execute", execute)
    app.router.add_get("/rpc/v1/kernels/{kernel_id}/terminal", terminal)
    add_service_routes(app, kernels, cluster_secret)
    return app
