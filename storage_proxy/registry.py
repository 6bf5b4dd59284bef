"""Presence in etcd: ``<namespace>/storage/<proxy_name>`` → JSON, kept alive by a lease.

Optional and tolerant: if etcd is unreachable the proxy keeps serving and
retries in the background; when the lease lapses the key disappears, which is
how the manager learns the proxy is gone.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from .config import EtcdConfig

log = logging.getLogger(__name__)

RETRY_S = 5.0


def presence_key(config: EtcdConfig, proxy_name: str) -> str:
    return f"{config.namespace.rstrip('/')}/storage/{proxy_name}"


class EtcdPresence:
    def __init__(self, config: EtcdConfig, proxy_name: str, value: dict[str, Any]) -> None:
        self.config = config
        self.key = presence_key(config, proxy_name)
        self.value = value
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None
        self._lease: Any = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._keep_alive())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._lease is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._lease.revoke(), 3)
        await self._close()

    async def _close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
        self._client = None
        self._lease = None

    async def _register(self, endpoint: str) -> None:
        import aetcd  # server-only dependency; imported when etcd is configured

        host, _, port = endpoint.rpartition(":")
        if not host:
            host, port = endpoint, "2379"
        for prefix in ("http://", "https://"):
            host = host.removeprefix(prefix)
        client = aetcd.Client(host=host, port=int(port), username=self.config.username, password=self.config.password, timeout=5)
        await client.connect()
        self._client = client
        self._lease = await client.lease(self.config.lease_ttl_s)
        value = dict(self.value, registered_at=time.time())
        await client.put(self.key.encode(), json.dumps(value).encode(), lease=self._lease)
        log.info("registered in etcd at %s as %s", endpoint, self.key)

    async def _keep_alive(self) -> None:
        attempt = 0
        while True:
            endpoint = self.config.endpoints[attempt % len(self.config.endpoints)]
            attempt += 1
            try:
                await self._register(endpoint)
                while True:
                    await asyncio.sleep(self.config.lease_ttl_s / 3)
                    reply = await self._lease.refresh()
                    if reply is None or reply.TTL <= 0:
                        raise RuntimeError("lease expired")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("etcd presence via %s failed (%s); retrying in %.0fs", endpoint, exc, RETRY_S)
                await self._close()
                await asyncio.sleep(RETRY_S)
