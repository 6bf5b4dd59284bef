"""A small async client of storage proxies' manager API (``/manager/v1``, Bearer secret)."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from corral.common.errors import BackendError, CorralError, ServiceUnavailable, error_from_problem

from .proxies import ProxyInfo


class StorageProxyClient:
    """One shared HTTP session for all proxies; each call names its proxy."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(10.0, timeout_s))
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _call(self, proxy: ProxyInfo, method: str, tail: str, body: Any = None) -> Any:
        url = f"{proxy.manager_url.rstrip('/')}/manager/v1/{tail}"
        headers = {"Authorization": f"Bearer {proxy.manager_secret}", "Accept": "application/json"}
        try:
            async with self._session().request(method, url, json=body, headers=headers) as response:
                text = await response.text()
                if response.status >= 400:
                    raise _error(proxy, response.status, text)
                return json.loads(text) if text else None
        except CorralError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ServiceUnavailable(
                f"storage proxy {proxy.name} at {proxy.manager_url} is unreachable: {exc or type(exc).__name__}",
                proxy=proxy.name,
            ) from None

    async def list_volumes(self, proxy: ProxyInfo) -> list[dict[str, Any]]:
        doc = await self._call(proxy, "GET", "volumes")
        return list(doc.get("volumes", []))

    async def create_vfolder(self, proxy: ProxyInfo, volume: str, vfid: str, quota_bytes: int | None) -> dict[str, Any]:
        return await self._call(proxy, "POST", "vfolders", {"volume": volume, "vfid": vfid, "quota_bytes": quota_bytes})

    async def delete_vfolder(self, proxy: ProxyInfo, volume: str, vfid: str) -> None:
        await self._call(proxy, "DELETE", f"vfolders/{volume}/{vfid}")

    async def usage(self, proxy: ProxyInfo, volume: str, vfid: str) -> dict[str, Any]:
        return await self._call(proxy, "GET", f"vfolders/{volume}/{vfid}/usage")

    async def set_quota(self, proxy: ProxyInfo, volume: str, vfid: str, quota_bytes: int | None) -> None:
        await self._call(proxy, "PUT", f"vfolders/{volume}/{vfid}/quota", {"quota_bytes": quota_bytes})

    async def mount_path(self, proxy: ProxyInfo, volume: str, vfid: str) -> str:
        doc = await self._call(proxy, "GET", f"vfolders/{volume}/{vfid}/mount")
        return str(doc["host_path"])


def _error(proxy: ProxyInfo, status: int, text: str) -> CorralError:
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and ("type" in doc or "detail" in doc):
        error = error_from_problem(doc, status)
        if status == 401:
            # The manager's secret is wrong: a configuration problem, not the caller's.
            return BackendError(f"storage proxy {proxy.name} refused the manager's secret; check [storage] secrets")
        error.detail = f"storage proxy {proxy.name}: {error.detail}"
        return error
    return BackendError(f"storage proxy {proxy.name} answered HTTP {status}: {' '.join(text.split())[:200]}")
