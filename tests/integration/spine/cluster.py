"""An in-process Corral cluster for integration tests: a real manager (SQLite
or PostgreSQL, optional etcd) and real agents driving the local Docker engine."""
from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiodocker

from corral.agent.config import load_agent_config
from corral.agent.server import AgentServer
from corral.client.api import AsyncCorralClient
from corral.client.config import ClientConfig
from corral.common.ids import new_access_key, new_secret_key
from corral.manager.bootstrap import ensure_user
from corral.manager.config import load_manager_config
from corral.manager.server import ManagerServer

BASE_IMAGE = "corral/python:latest"


@dataclass
class LiveCluster:
    db_url: str
    etcd_endpoints: list[str] = field(default_factory=list)
    heartbeat_timeout_s: float = 15.0
    cluster_secret: str = field(default_factory=new_secret_key)
    admin_access_key: str = field(default_factory=new_access_key)
    admin_secret_key: str = field(default_factory=new_secret_key)
    managers: list[ManagerServer] = field(default_factory=list)
    agents: list[AgentServer] = field(default_factory=list)
    clients: list[AsyncCorralClient] = field(default_factory=list)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ct-", dir="/tmp")))
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    storage: Any = None  # the in-process StorageProxyServer, once start_storage() ran
    storage_manager_secret: str = field(default_factory=new_secret_key)
    storage_jwt_secret: str = field(default_factory=new_secret_key)
    # Set once any agent ran: its containers are removed at the end even if the test dropped the agent.
    agents_started: bool = False

    @property
    def manager(self) -> ManagerServer:
        return self.managers[0]

    STORAGE_PROXY = "sp1"
    STORAGE_VOLUME = "vol1"

    def storage_entry(self) -> dict[str, Any]:
        assert self.storage is not None
        return {
            "name": self.STORAGE_PROXY, "manager_url": self.storage.manager_url, "client_url": self.storage.client_url,
            "manager_secret": self.storage_manager_secret, "jwt_secret": self.storage_jwt_secret,
        }

    async def start_storage(self) -> Any:
        """A storage proxy in this process with one vfs volume under ``root``; managers
        started before or after use it (default host ``sp1:vol1``)."""
        from corral.manager.storage.proxies import ProxyInfo
        from corral.storage_proxy.config import load_storage_config
        from corral.storage_proxy.server import StorageProxyServer

        config = load_storage_config(None, overrides={
            "proxy_name": self.STORAGE_PROXY,
            "manager_secret": self.storage_manager_secret,
            "jwt_secret": self.storage_jwt_secret,
            "manager_api": {"host": "127.0.0.1", "port": 0},
            "client_api": {"host": "127.0.0.1", "port": 0},
            "volumes": [{"name": self.STORAGE_VOLUME, "backend": "vfs", "path": str(self.volume_root)}],
        })
        self.storage = StorageProxyServer(config)
        await self.storage.start()
        for manager in self.managers:
            manager.vfolders.proxies.register(ProxyInfo(**self.storage_entry()))
        return self.storage

    @property
    def volume_root(self) -> Path:
        return self.root / "volumes" / self.STORAGE_VOLUME

    async def start_manager(self, **overrides: Any) -> ManagerServer:
        if self.storage is not None and "storage" not in overrides:
            overrides["storage"] = {
                "proxies": [self.storage_entry()], "default_host": f"{self.STORAGE_PROXY}:{self.STORAGE_VOLUME}",
            }
        overrides.setdefault("lifecycle", {"interval_s": 0.5})
        overrides.setdefault("scheduler", {"interval_s": 0.5})
        config = load_manager_config(
            None,
            id=f"manager-{len(self.managers) + 1}",
            api={"host": "127.0.0.1", "port": 0},
            db={"url": self.db_url},
            etcd={"endpoints": self.etcd_endpoints, "prefix": f"/corral-test-{self.run_id}"},
            agents={"cluster_secret": self.cluster_secret, "heartbeat_timeout_s": self.heartbeat_timeout_s},
            admin_access_key=self.admin_access_key,
            admin_secret_key=self.admin_secret_key,
            **overrides,
        )
        manager = ManagerServer(config)
        await manager.start()
        self.managers.append(manager)
        return manager

    def agent_config(self, name: str = "a1", manager: ManagerServer | None = None, **overrides: Any) -> Any:
        manager = manager or self.manager
        data = {
            "id": f"t{self.run_id}-{name}",
            "data_dir": str(self.root / name),
            "rpc": {"host": "127.0.0.1", "port": 0},
            "manager": {"url": manager.url, "cluster_secret": self.cluster_secret, "heartbeat_interval_s": 0.5},
            "docker": {"image_pull": "never"},
            "resources": {"cpu_count": 4, "mem": "4g"},
        }
        for key, value in overrides.items():
            if isinstance(value, dict):
                data.setdefault(key, {}).update(value)  # type: ignore[union-attr]
            else:
                data[key] = value
        return load_agent_config(None, **data)

    async def start_agent(self, name: str = "a1", **overrides: Any) -> AgentServer:
        agent = AgentServer(self.agent_config(name, **overrides))
        await agent.start()
        await agent.link.heartbeat_now()
        self.agents.append(agent)
        self.agents_started = True
        return agent

    def client(self, access_key: str | None = None, secret_key: str | None = None,
               manager: ManagerServer | None = None) -> AsyncCorralClient:
        config = ClientConfig(
            (manager or self.manager).url, access_key or self.admin_access_key, secret_key or self.admin_secret_key
        )
        client = AsyncCorralClient(config)
        self.clients.append(client)
        return client

    async def add_user(self, username: str) -> tuple[str, str]:
        access, secret = new_access_key(), new_secret_key()
        await ensure_user(self.manager.sessionmaker, username, "user", access, secret)
        return access, secret

    async def stop(self) -> None:
        for client in self.clients:
            await client.close()
        for agent in self.agents:
            try:
                await agent.stop()
            except Exception:  # noqa: BLE001 - stopped already by the test
                pass
        for manager in self.managers:
            try:
                await manager.stop()
            except Exception:  # noqa: BLE001
                pass
        if self.storage is not None:
            await self.storage.stop()
        if self.agents or self.agents_started:
            await remove_test_containers(f"t{self.run_id}-")


async def remove_test_containers(agent_prefix: str) -> None:
    """Leave no container behind, whatever the test did."""
    async with aiodocker.Docker() as docker:
        filters = json.dumps({"label": ["ai.corral.managed=1"]})
        for container in await docker.containers.list(all=True, filters=filters):
            info = await container.show()
            if info["Config"]["Labels"].get("ai.corral.agent-id", "").startswith(agent_prefix):
                await container.delete(force=True)


async def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
