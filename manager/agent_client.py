"""The manager's HTTP RPC client for agents (authenticated by the cluster secret)."""
from __future__ import annotations

import codecs
import json
import logging
from typing import Any, AsyncIterator

import aiohttp

from corral.common.cluster_secret import bearer_headers

from corral.common.errors import BackendError, Conflict, CorralError, NotFound, ServiceUnavailable, error_from_problem
from corral.common.terminal_protocol import HEARTBEAT_S, MAX_MESSAGE, TerminalSize

log = logging.getLogger(__name__)


class AgentClient:
    def __init__(self, cluster_secret: str) -> None:
        self._headers = bearer_headers(cluster_secret)
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                headers=self._headers, timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=None)
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def _call(self, method: str, address: str, path: str, payload: Any = None, timeout: float = 30) -> Any:
        url = f"{address.rstrip('/')}{path}"
        try:
            async with self.http.request(method, url, json=payload, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                return await _read_json(resp)
        except aiohttp.ClientError as exc:
            raise ServiceUnavailable(f"agent at {address} is unreachable: {exc}") from None
        except TimeoutError:
            raise ServiceUnavailable(f"agent at {address} did not answer in {timeout:.0f} s") from None

    async def create_kernel(self, address: str, spec: dict[str, Any]) -> Any:
        return await self._call("POST", address, "/rpc/v1/kernels", spec)

    async def destroy_kernel(self, address: str, kernel_id: str, reason: str) -> Any:
        return await self._call("DELETE", address, f"/rpc/v1/kernels/{kernel_id}?reason={reason[:200]}", timeout=60)

    async def kernel_logs(self, address: str, kernel_id: str) -> str:
        data = await self._call("GET", address, f"/rpc/v1/kernels/{kernel_id}/logs")
        return str(data.get("logs", ""))

    async def open_terminal(
        self, address: str, kernel_id: str, size: TerminalSize, attach: str | None
    ) -> aiohttp.ClientWebSocketResponse:
        """The agent's terminal websocket for a kernel (see `corral.common.terminal_protocol`)."""
        query = {"rows": str(size.rows), "cols": str(size.cols), **({"attach": attach} if attach else {})}
        url = f"{address.rstrip('/')}/rpc/v1/kernels/{kernel_id}/terminal"
        try:
            return await self.http.ws_connect(
                url, params=query, heartbeat=HEARTBEAT_S, max_msg_size=MAX_MESSAGE, timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10)
            )
        except aiohttp.WSServerHandshakeError as exc:
            detail = f"agent at {address} refused the terminal: {exc.message or exc.status}"
            if exc.status == 404:
                raise NotFound(detail) from None
            if exc.status == 409:
                raise Conflict(detail) from None
            raise BackendError(detail) from None
        except aiohttp.ClientError as exc:
            raise ServiceUnavailable(f"agent at {address} is unreachable: {exc}") from None

    async def list_services(self, address: str, kernel_id: str) -> list[dict[str, Any]]:
        data = await self._call("GET", address, f"/rpc/v1/kernels/{kernel_id}/services")
        return list(data.get("services") or [])

    async def set_authorized_keys(self, address: str, kernel_id: str, keys: list[str]) -> None:
        await self._call("PUT", address, f"/rpc/v1/kernels/{kernel_id}/ssh/authorized-keys", {"keys": keys}, timeout=10)

    async def start_service(self, address: str, kernel_id: str, name: str, wait_s: float) -> dict[str, Any]:
        """Starts a service unless it is up; its state once ready or failed (or after ``wait_s``)."""
        path = f"/rpc/v1/kernels/{kernel_id}/services/{name}/start?wait_s={wait_s:g}"
        return dict(await self._call("POST", address, path, timeout=wait_s + 30))

    async def open_service_tcp(self, address: str, kernel_id: str, name: str) -> aiohttp.ClientWebSocketResponse:
        """The agent's TCP tunnel websocket for a (ready) service."""
        url = f"{address.rstrip('/')}/rpc/v1/kernels/{kernel_id}/services/{name}/tcp"
        try:
            return await self.http.ws_connect(
                url, heartbeat=HEARTBEAT_S, max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10)
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise BackendError(f"agent at {address} refused the tunnel: {exc.message or exc.status}") from None
        except aiohttp.ClientError as exc:
            raise ServiceUnavailable(f"agent at {address} is unreachable: {exc}") from None

    def service_http_url(self, address: str, kernel_id: str, name: str, tail: str) -> str:
        return f"{address.rstrip('/')}/rpc/v1/kernels/{kernel_id}/services/{name}/http/{tail}"

    async def execute(self, address: str, kernel_id: str, code: str) -> AsyncIterator[dict[str, Any]]:
        url = f"{address.rstrip('/')}/rpc/v1/kernels/{kernel_id}/execute"
        try:
            async with self.http.post(url, json={"code": code}) as resp:
                if resp.status >= 400:
                    await _read_json(resp)
                async for line in resp.content:
                    if line.strip():
                        yield json.loads(line)
        except aiohttp.ClientError as exc:
            raise ServiceUnavailable(f"agent at {address} is unreachable: {exc}") from None


    async def interrupt_kernel(self, address: str, kernel_id: str) -> bool:
        """SIGINT to the kernel's running execute; False when its interpreter was idle."""
        data = await self._call("POST", address, f"/rpc/v1/kernels/{kernel_id}/interrupt", timeout=15)
        return bool(data.get("interrupted"))

    async def follow_kernel_logs(self, address: str, kernel_id: str) -> AsyncIterator[str]:
        """The container's output, then new output live until it ends. Yields ``""`` first, once
        the agent has accepted (so a caller can turn its errors into an answer before streaming)."""
        url = f"{address.rstrip('/')}/rpc/v1/kernels/{kernel_id}/logs"
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            async with self.http.get(url, params={"follow": "1"}) as resp:
                if resp.status >= 400:
                    await _read_json(resp)
                yield ""
                async for chunk in resp.content.iter_any():
                    if text := decoder.decode(chunk):
                        yield text
        except aiohttp.ClientError as exc:
            raise ServiceUnavailable(f"agent at {address} is unreachable: {exc}") from None


async def _read_json(resp: aiohttp.ClientResponse) -> Any:
    text = await resp.text()
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        raise BackendError(f"agent answered HTTP {resp.status} with non-JSON: {text[:200]}") from None
    if resp.status >= 400:
        if isinstance(data, dict) and "type" in data:
            raise error_from_problem(data, resp.status)
        raise CorralError(f"agent answered HTTP {resp.status}: {text[:200]}")
    return data
