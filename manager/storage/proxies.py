"""Which storage proxies exist: the ``[storage]`` config plus, with etcd, those registered there.

A proxy registers ``<prefix>/storage/<name>`` → ``{name, manager_url,
client_url, volumes}`` under a lease (``corral.storage_proxy.registry``); the
secrets it does not publish come from ``[storage]``. Configured entries win
over discovered ones of the same name.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from corral.common.errors import ConfigError, InvalidRequest, NotFound, ServiceUnavailable

from ..config import StorageConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProxyInfo:
    name: str
    manager_url: str
    client_url: str
    manager_secret: str
    jwt_secret: str
    source: str = "config"  # config | etcd


def split_host(host: str) -> tuple[str, str]:
    """``proxy:volume`` → (proxy, volume); ``proxy`` alone → (proxy, ""); 400 when malformed."""
    proxy, sep, volume = host.partition(":")
    if not proxy or (sep and not volume) or ":" in volume:
        raise InvalidRequest(f"storage host {host!r} is not PROXY:VOLUME")
    return proxy, volume


class StorageProxies:
    def __init__(self, config: StorageConfig, etcd: Any = None, etcd_prefix: str = "/corral") -> None:
        self.config = config
        self._static: dict[str, ProxyInfo] = {}
        for entry in config.proxies:
            self.register(ProxyInfo(
                entry.name, entry.manager_url, entry.client_url,
                entry.manager_secret or config.manager_secret, entry.jwt_secret or config.jwt_secret,
            ))
        self._etcd = etcd
        self._etcd_prefix = f"{etcd_prefix.rstrip('/')}/storage/"
        self._discovered: dict[str, ProxyInfo] = {}
        self._discovered_at = 0.0

    def register(self, proxy: ProxyInfo) -> None:
        """Add or replace a proxy known without etcd (config, the embedded stack, tests)."""
        if not proxy.manager_secret or not proxy.jwt_secret:
            raise ConfigError(f"storage proxy {proxy.name}: manager_secret and jwt_secret are required")
        self._static[proxy.name] = proxy

    async def all(self) -> dict[str, ProxyInfo]:
        await self._refresh()
        return {**self._discovered, **self._static}

    async def get(self, name: str) -> ProxyInfo:
        if name in self._static:
            return self._static[name]
        await self._refresh()
        if name not in self._discovered and self._etcd is not None:
            await self._refresh(force=True)  # it may have registered a moment ago
        try:
            return self._discovered[name]
        except KeyError:
            raise NotFound(f"no storage proxy named {name!r}", proxy=name) from None

    async def default_host(self) -> str:
        if self.config.default_host:
            return self.config.default_host
        proxies = await self.all()
        if not proxies:
            raise ServiceUnavailable("no storage proxy is configured: add [storage] proxies to the manager config")
        first = sorted(proxies.values(), key=lambda p: (p.source != "config", p.name))[0]
        return first.name

    async def _refresh(self, force: bool = False) -> None:
        if self._etcd is None:
            return
        if not force and time.monotonic() - self._discovered_at < self.config.discovery_ttl_s:
            return
        if not (self.config.manager_secret and self.config.jwt_secret):
            self._discovered_at = time.monotonic()
            return  # without the shared secrets a discovered proxy could not be used
        try:
            found = await self._etcd.get_prefix(self._etcd_prefix.encode())
        except Exception as exc:  # noqa: BLE001 - keep the last view when etcd hiccups
            log.warning("could not list storage proxies in etcd: %s", exc)
            return
        discovered: dict[str, ProxyInfo] = {}
        for item in found:
            try:
                doc = json.loads(item.value)
                discovered[doc["name"]] = ProxyInfo(
                    doc["name"], doc["manager_url"], doc["client_url"],
                    self.config.manager_secret, self.config.jwt_secret, source="etcd",
                )
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring a malformed storage proxy entry at %r", item.key)
        self._discovered = discovered
        self._discovered_at = time.monotonic()
