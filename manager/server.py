"""A running manager: the one place its services are built and wired.

Each service gets only what it uses; nothing is filled in after
construction. Services that others must be able to poke without knowing them
get a narrow handle instead (the scheduler's `SchedulerWakeup`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from .agent_client import AgentClient
from .agent_registry import AgentRegistry
from .api.app import create_app
from .api.context_access import ApiServices
from .app_auth import AppAuth
from .auth import NonceLedger, RequestAuthenticator
from .bootstrap import ensure_user
from .config import ManagerConfig
from .db.engine import create_engine, make_sessionmaker
from .db.migrate import upgrade_to_head
from .events import EventHub
from .local_agents import LocalAgents
from .leader import EtcdLeaderElection, LeaderElection, SingleManager
from .lifecycle.kernel_events import KernelEvents
from .lifecycle.limits import LimitSweep
from .lifecycle.recovery import Recovery
from .lifecycle.terminator import Terminator
from .project_service import ProjectService
from .group_seeding import seed_groups
from .resource_groups import ResourceGroupService
from .resource_policies import ResourcePolicyService
from .scheduler.bind import Binder, KernelAgentClient
from .scheduler.cooldown import AgentCooldown
from .scheduler.contexts import decayed_usage_for
from .scheduler.dispatcher import Scheduler
from .scheduler.queue_view import QueueViewer
from .scheduler.fencing import LeaderFence
from .scheduler.registry import SchedulerStages, build_stages
from .scheduler.wakeup import SchedulerWakeup
from .session_access import AccessRecorder
from .session_service import SessionService
from .ssh_keys import SshKeyService
from .storage.proxies import StorageProxies
from .storage.proxy_client import StorageProxyClient
from .storage.vfolder_service import VfolderService
from .web_sessions import WebSessionService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManagerCore:
    """The session lifecycle: scheduling, binding, agent events, termination and recovery."""

    hub: EventHub
    wakeup: SchedulerWakeup
    kernel_events: KernelEvents
    binder: Binder
    terminator: Terminator
    scheduler: Scheduler
    recovery: Recovery
    registry: AgentRegistry


def build_core(
    config: ManagerConfig,
    sessionmaker: async_sessionmaker[AsyncSession],
    leader: LeaderElection,
    agent_client: KernelAgentClient,
    stages: SchedulerStages | None = None,
) -> ManagerCore:
    """Wire the lifecycle services (also what tests and benchmarks use, with their own agent client;
    ``stages`` replaces the configured scheduler stages)."""
    hub = EventHub()
    wakeup = SchedulerWakeup()
    kernel_events = KernelEvents(sessionmaker, hub, wakeup)
    cooldown = AgentCooldown(config.scheduler.unreachable_backoff_s)
    terminator = Terminator(sessionmaker, agent_client, kernel_events)
    kernel_events.stop_others = terminator.spawn
    binder = Binder(sessionmaker, hub, agent_client, kernel_events, terminator, wakeup, cooldown)
    scheduler = Scheduler(
        sessionmaker, hub, leader, LeaderFence(sessionmaker, config.id), stages or build_stages(config.scheduler),
        binder, wakeup, cooldown, config.scheduler, decayed_usage_for(config.scheduler), terminator=terminator,
    )
    limits = LimitSweep(sessionmaker, hub, terminator, config.lifecycle.idle_warning_s)
    recovery = Recovery(sessionmaker, leader, binder, terminator, kernel_events, config.lifecycle, limits)
    registry = AgentRegistry(
        sessionmaker, leader, kernel_events, binder, terminator, wakeup, config.agents, config.lifecycle.lost_grace_s
    )
    return ManagerCore(hub, wakeup, kernel_events, binder, terminator, scheduler, recovery, registry)


class ManagerServer:
    def __init__(self, config: ManagerConfig) -> None:
        self.config = config
        self.port: int = config.api.port
        # What `stop` undoes, newest first; filled in as `start` gets further, so a partial start stops cleanly.
        self._cleanups: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        self._serving = False
        self.local_agents = LocalAgents()  # agents in this process (the embedded stack) register here

    @property
    def url(self) -> str:
        return f"http://{self.config.api.host}:{self.port}"

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        config = self.config
        engine = create_engine(config.db.url)
        self._on_stop("database engine", engine.dispose)
        await upgrade_to_head(engine)
        sessionmaker = make_sessionmaker(engine)
        self.engine: AsyncEngine = engine
        self.sessionmaker: async_sessionmaker[AsyncSession] = sessionmaker
        if config.admin_access_key and config.admin_secret_key:
            await ensure_user(sessionmaker, "admin", "admin", config.admin_access_key, config.admin_secret_key)
        await seed_groups(sessionmaker, config.scheduler.groups)

        etcd = self._etcd_client()
        self.leader: LeaderElection = (
            SingleManager() if etcd is None
            else EtcdLeaderElection(etcd, f"{config.etcd.prefix}/scheduler/leader", config.id)
        )
        await self.leader.start()
        self._on_stop("leader election", self.leader.stop)

        agent_client = AgentClient(config.agents.cluster_secret)
        self._on_stop("agent client", agent_client.close)
        core = build_core(config, sessionmaker, self.leader, agent_client)
        self._on_stop("binds", core.binder.close)
        self._on_stop("terminations", core.terminator.close)
        self.core = core
        storage = config.storage
        self.vfolders = VfolderService(
            sessionmaker,
            StorageProxies(storage, etcd=etcd, etcd_prefix=config.etcd.prefix),
            StorageProxyClient(storage.request_timeout_s),
            storage.token_ttl_s,
        )
        self._on_stop("storage proxy client", self.vfolders.close)
        self.sessions = SessionService(
            sessionmaker, core.hub, self.vfolders, core.terminator, core.wakeup, config.default_image
        )

        nonces = NonceLedger(sessionmaker)
        web_sessions = WebSessionService(sessionmaker, config.web)
        app = create_app(
            ApiServices(
                manager_id=config.id,
                cluster_secret=config.agents.cluster_secret,
                sessionmaker=sessionmaker,
                hub=core.hub,
                authenticator=RequestAuthenticator(sessionmaker, nonces=nonces, web_sessions=web_sessions),
                agent_client=agent_client,
                sessions=self.sessions,
                registry=core.registry,
                kernel_events=core.kernel_events,
                vfolders=self.vfolders,
                projects=ProjectService(sessionmaker),
                ssh_keys=SshKeyService(sessionmaker, agent_client),
                app_auth=AppAuth(config.agents.cluster_secret, nonces),
                access=AccessRecorder(sessionmaker),
                local_agents=self.local_agents,
                web_sessions=web_sessions,
                resource_groups=ResourceGroupService(sessionmaker),
                resource_policies=ResourcePolicyService(sessionmaker),
                queue=QueueViewer(sessionmaker, config.scheduler, decayed_usage_for(config.scheduler)),
            )
        )
        self.app = app
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await runner.setup()
        self._on_stop("HTTP server", runner.cleanup)
        site = web.TCPSite(runner, config.api.host, config.api.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        for name, service in (("scheduler", core.scheduler), ("recovery", core.recovery), ("agent watch", core.registry)):
            service.start()
            self._on_stop(name, service.stop)
        self._serving = True
        log.info("manager %s listening on %s (database %s)", config.id, self.url, engine.url.render_as_string())

    def _etcd_client(self) -> Any:
        if not self.config.etcd.endpoints:
            return None
        import aetcd

        host, _, port = self.config.etcd.endpoints[0].rpartition(":")
        client = aetcd.Client(host=host or "127.0.0.1", port=int(port or 2379))
        self._on_stop("etcd client", client.close)
        return client

    def _on_stop(self, what: str, cleanup: Callable[[], Awaitable[Any]]) -> None:
        self._cleanups.append((what, cleanup))

    async def stop(self) -> None:
        """Undo whatever `start` got to, newest first; safe after a failed or partial start, and twice."""
        was_serving, self._serving = self._serving, False
        while self._cleanups:
            what, cleanup = self._cleanups.pop()
            try:
                await cleanup()
            except Exception:  # noqa: BLE001 - keep stopping the rest; never mask why we are stopping
                log.warning("stopping the %s failed", what, exc_info=True)
        if was_serving:
            log.info("manager %s stopped", self.config.id)
