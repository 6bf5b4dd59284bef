"""A running manager: database, scheduler, agent registry and the HTTP API."""
from __future__ import annotations

import logging

from aiohttp import web

from .agent_client import AgentClient
from .agent_registry import AgentRegistry
from .api.app import create_app
from .bootstrap import ensure_user
from .config import ManagerConfig
from .context import ManagerContext
from .db.engine import create_engine, make_sessionmaker
from .db.migrate import upgrade_to_head
from .leader import EtcdLeaderElection, LeaderElection, SingleManager
from .scheduler.dispatcher import Scheduler
from .session_service import SessionService
from .storage.proxies import StorageProxies
from .storage.proxy_client import StorageProxyClient
from .storage.vfolder_service import VfolderService

log = logging.getLogger(__name__)


class ManagerServer:
    def __init__(self, config: ManagerConfig) -> None:
        self.config = config
        self.port: int = config.api.port
        self._runner: web.AppRunner | None = None
        self._etcd: object | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.api.host}:{self.port}"

    async def start(self) -> None:
        config = self.config
        engine = create_engine(config.db.url)
        await upgrade_to_head(engine)
        ctx = ManagerContext(config=config, engine=engine, sessionmaker=make_sessionmaker(engine))
        if config.admin_access_key and config.admin_secret_key:
            await ensure_user(ctx.sessionmaker, "admin", "admin", config.admin_access_key, config.admin_secret_key)
        self.leader = await self._make_leader()
        await self.leader.start()
        ctx.agent_client = AgentClient(config.agents.cluster_secret)
        ctx.scheduler = Scheduler(ctx, self.leader)
        storage = config.storage
        ctx.vfolders = VfolderService(
            ctx,
            StorageProxies(storage, etcd=self._etcd, etcd_prefix=config.etcd.prefix),
            StorageProxyClient(storage.request_timeout_s),
        )
        self.ctx = ctx
        self.sessions = SessionService(ctx)
        self.registry = AgentRegistry(ctx, self.leader)
        app = create_app(ctx, self.sessions, self.registry)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.api.host, config.api.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ctx.scheduler.start()
        self.registry.start()
        log.info("manager %s listening on %s (database %s)", config.id, self.url, engine.url.render_as_string())

    async def _make_leader(self) -> LeaderElection:
        if not self.config.etcd.endpoints:
            return SingleManager()
        import aetcd

        host, _, port = self.config.etcd.endpoints[0].rpartition(":")
        self._etcd = aetcd.Client(host=host or "127.0.0.1", port=int(port or 2379))
        return EtcdLeaderElection(self._etcd, f"{self.config.etcd.prefix}/scheduler/leader", self.config.id)

    async def stop(self) -> None:
        await self.ctx.scheduler.stop()
        await self.registry.stop()
        await self.sessions.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.leader.stop()
        if self._etcd is not None:
            await self._etcd.close()  # type: ignore[attr-defined]
        await self.ctx.agent_client.close()
        await self.ctx.vfolders.close()
        await self.ctx.engine.dispose()
        log.info("manager %s stopped", self.config.id)
