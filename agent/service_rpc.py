"""The agent's RPC for a kernel's services: list, start, TCP tunnel (websocket), HTTP proxy, SSH keys.

Every byte goes through the runner's per-service Unix socket in the kernel's directory; nothing is
published on the node. A connection to that socket starts a lazy service and waits until it is
ready, so the HTTP path costs no extra round trip; when the runner closes it unanswered (the
service failed), the agent asks for the service's state and answers 502 with its log tail."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL
from pydantic import BaseModel, ConfigDict, Field

from corral.common import http_proxy
from corral.common.tcp_ws_relay import relay_tcp
from corral.common.cluster_secret import check_bearer
from corral.common.errors import SessionServiceFailed
from corral.common.request_body import parse_body
from corral.kernels import services as service_defs

from corral.kernels.runner_services import FD_SOCKET_NAME

from . import runner_client
from .runner_client import UnknownService
from .kernels import KernelManager

log = logging.getLogger(__name__)

KERNELS_KEY = web.AppKey("corral.service_rpc.kernels", KernelManager)
SECRET_KEY = web.AppKey("corral.service_rpc.secret", str)
PROXIES_KEY = web.AppKey("corral.service_rpc.proxies", "ServiceClients")
READY_WAIT_S = 300.0  # a tunnel waits this long at most for a starting service
TUNNEL_HEARTBEAT_S = 20.0
STREAM_LIMIT = 1 << 20


class AuthorizedKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[str] = Field(max_length=1000)


class ServiceClients:
    """One keep-alive HTTP client per (kernel, service) socket; dropped when the kernel goes."""

    def __init__(self) -> None:
        self._clients: dict[Path, aiohttp.ClientSession] = {}

    def get(self, socket_path: Path) -> aiohttp.ClientSession:
        client = self._clients.get(socket_path)
        if client is None or client.closed:
            client = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(socket_path)),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=READY_WAIT_S),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._clients[socket_path] = client
        return client

    def forget_kernel(self, kernel_dir: Path) -> None:
        for path in [path for path in self._clients if path.parent == kernel_dir]:
            client = self._clients.pop(path)
            asyncio.get_running_loop().create_task(client.close())

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


def _kernels(request: web.Request) -> KernelManager:
    check_bearer(request.headers, request.app[SECRET_KEY])
    return request.app[KERNELS_KEY]


def _service_socket(kernels: KernelManager, kernel_id: str, name: str) -> Path:
    return kernels.runner_socket(kernel_id).parent / service_defs.socket_name(name)


async def _runner(kernels: KernelManager, kernel_id: str) -> runner_client.RunnerClient:
    return await runner_client.RunnerClient.connect(kernels.runner_socket(kernel_id))


async def list_services(request: web.Request) -> web.Response:
    kernels = _kernels(request)
    async with await _runner(kernels, request.match_info["kernel_id"]) as runner:
        found = await runner.services()
    return web.json_response({"services": found})


async def start_service(request: web.Request) -> web.Response:
    kernels = _kernels(request)
    wait_s = _float(request.query.get("wait_s"), 0.0)
    async with await _runner(kernels, request.match_info["kernel_id"]) as runner:
        info = await runner.start_service(request.match_info["name"], min(wait_s, READY_WAIT_S))
    return web.json_response(info)


async def _ready(kernels: KernelManager, kernel_id: str, name: str, wait_s: float) -> dict[str, object]:
    async with await _runner(kernels, kernel_id) as runner:
        info = await runner.start_service(name, wait_s)
    if info.get("state") != service_defs.READY:
        raise SessionServiceFailed.not_available(name, info)
    return info


async def service_tcp(request: web.Request) -> web.StreamResponse:
    kernels = _kernels(request)
    reader, writer = await open_service_connection(kernels, request.match_info["kernel_id"], request.match_info["name"])
    socket = web.WebSocketResponse(heartbeat=TUNNEL_HEARTBEAT_S, max_msg_size=0, compress=False)
    try:
        await socket.prepare(request)
    except BaseException:
        writer.close()
        raise
    await relay_tcp(socket, reader, writer)
    return socket


async def open_service_connection(
    kernels: KernelManager, kernel_id: str, name: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the kernel's (ready) service, made by its runner in the container and handed over."""
    fd_socket = kernels.runner_socket(kernel_id).parent / FD_SOCKET_NAME
    connection, answer = await runner_client.connect_service(fd_socket, name, READY_WAIT_S)
    if connection is None:
        if "service" not in answer:
            raise UnknownService(str(answer.get("error") or f"no service named {name!r}"))
        service = answer["service"]
        raise SessionServiceFailed.not_available(name, {**service, "error": answer.get("error") or service.get("error")})
    return await asyncio.open_connection(sock=connection, limit=STREAM_LIMIT)


async def service_http(request: web.Request) -> web.StreamResponse:
    kernels = _kernels(request)
    kernel_id, name = request.match_info["kernel_id"], request.match_info["name"]
    socket_path = _service_socket(kernels, kernel_id, name)
    if not socket_path.exists():
        await _ready(kernels, kernel_id, name, 0)  # names the services there are, or says why not
    # The app sees the path the browser asked for: its base URL is the manager's proxy path.
    session_id = kernels.running(kernel_id).session_id
    url = URL.build(
        scheme="http", host=name, encoded=True,
        path=service_defs.http_base_path(session_id, name) + http_proxy.raw_tail(request, f"/services/{name}/http/"),
        query_string=request.rel_url.raw_query_string,
    )
    headers = http_proxy.forwarded_headers(request.headers, drop=("Authorization",))
    try:
        return await http_proxy.forward(request, request.app[PROXIES_KEY].get(socket_path), url, headers)
    except http_proxy.UpstreamUnreachable as exc:
        log.info("service %s of kernel %s did not answer: %s", name, kernel_id, exc)
        async with await _runner(kernels, kernel_id) as runner:
            info = await runner.start_service(name, 0)
        if info.get("state") == service_defs.READY:
            raise SessionServiceFailed(f"service {name!r} dropped the connection: {exc}", service=name,
                                       state=info.get("state"), log_tail=info.get("log_tail") or "") from None
        raise SessionServiceFailed.not_available(name, info) from None


async def set_authorized_keys(request: web.Request) -> web.Response:
    kernels = _kernels(request)
    body = await parse_body(request, AuthorizedKeys)
    kernels.set_authorized_keys(request.match_info["kernel_id"], body.keys)
    return web.json_response({"keys": len(body.keys)})


def _float(text: str | None, default: float) -> float:
    try:
        value = float(text) if text is not None else default
    except ValueError:
        return default
    return value if value >= 0 else default


def add_service_routes(app: web.Application, kernels: KernelManager, cluster_secret: str) -> None:
    app[KERNELS_KEY] = kernels
    app[SECRET_KEY] = cluster_secret
    clients = app[PROXIES_KEY] = ServiceClients()
    kernels.forget_hooks.append(clients.forget_kernel)

    async def close_clients(_: web.Application) -> None:
        await clients.close()

    app.on_cleanup.append(close_clients)
    base = "/rpc/v1/kernels/{kernel_id}"
    app.router.add_get(f"{base}/services", list_services)
    app.router.add_post(f"{base}/services/{{name}}/start", start_service)
    app.router.add_get(f"{base}/services/{{name}}/tcp", service_tcp)
    app.router.add_route("*", f"{base}/services/{{name}}/http/{{tail:.*}}", service_http)
    app.router.add_put(f"{base}/ssh/authorized-keys", set_authorized_keys)
