"""The manager's lifecycle services, wired as `server.py` wires them, on a real database
(SQLite or PostgreSQL), with a scripted agent in place of the HTTP one.

`ScriptedAgents` keeps the agent's contract (idempotent create; a destroy of
an unknown kernel answers 404 and leaves a tombstone that refuses a later
create), and lets a test hold a call open to force an interleaving.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from corral.common.errors import Conflict, KernelDestroyed, NotFound, ServiceUnavailable
from corral.common.ids import new_id
from corral.common.node_resources import NodeCapacity
from corral.manager.auth import AuthUser
from corral.manager.clock import utcnow
from corral.manager.config import ManagerConfig, load_manager_config
from corral.manager.db.engine import create_engine, make_sessionmaker
from corral.manager.db.migrate import upgrade_to_head
from corral.manager.db.models import Agent, Kernel, Session, SessionStatusChange, User
from corral.manager.leader import LeaderElection, SingleManager
from corral.manager.scheduler.registry import SchedulerStages
from corral.manager.server import ManagerCore, build_core
from corral.manager.session_requests import CreateSessionRequest
from corral.manager.session_service import SessionService

AGENT_ID = "node-1"
AGENT_ADDRESS = "http://agent.invalid:1"


@dataclass
class ScriptedAgents:
    """One agent's kernel RPC, in memory."""

    containers: dict[str, dict[str, Any]] = field(default_factory=dict)  # kernel id -> spec
    tombstones: set[str] = field(default_factory=set)
    unreachable: bool = False
    replies_lost: bool = False  # creates happen, but the answer never reaches the manager (a timeout)
    refuse_with: str | None = None  # a definite error for every create
    hold_create: asyncio.Event | None = None  # while set-able and unset, creates wait
    create_calls: int = 0
    create_entered: asyncio.Event = field(default_factory=asyncio.Event)
    hold_destroy: asyncio.Event | None = None  # while set-able and unset, destroys wait
    destroy_entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def create_kernel(self, address: str, spec: dict[str, Any]) -> Any:
        self.create_calls += 1
        self.create_entered.set()
        if self.hold_create is not None:
            await self.hold_create.wait()
        if self.unreachable:
            raise ServiceUnavailable(f"agent at {address} is unreachable: connection refused")
        if self.refuse_with:
            raise Conflict(self.refuse_with) if self.refuse_with == "conflict" else NotFound(self.refuse_with)
        kernel_id = spec["kernel_id"]
        if kernel_id in self.tombstones:
            raise KernelDestroyed(f"kernel {kernel_id} was destroyed before it was created")
        self.containers.setdefault(kernel_id, spec)
        if self.replies_lost:
            raise ServiceUnavailable(f"agent at {address} did not answer in 30 s")
        return {"kernel_id": kernel_id, "status": "preparing"}

    async def destroy_kernel(self, address: str, kernel_id: str, reason: str) -> Any:
        self.destroy_entered.set()
        if self.hold_destroy is not None:
            await self.hold_destroy.wait()
        if self.unreachable:
            raise ServiceUnavailable(f"agent at {address} is unreachable: connection refused")
        self.tombstones.add(kernel_id)
        if self.containers.pop(kernel_id, None) is None:
            raise NotFound(f"no kernel {kernel_id}")
        return {"exit_code": 137, "logs": ""}


class NoMounts:
    async def resolve_mounts(self, user: AuthUser, specs: Any) -> tuple[list[dict[str, Any]], list[str]]:
        return [], []


@dataclass
class Manager:
    """One manager process's lifecycle services; `crash` drops them (in-flight work included)."""

    core: ManagerCore
    sessions: SessionService

    async def crash(self) -> None:
        await self.core.binder.close()
        await self.core.terminator.close()

    async def settle(self) -> None:
        """Let every background bind and termination finish."""
        for _ in range(20):
            await self.core.binder.in_flight.wait_idle()
            await self.core.terminator.in_flight.wait_idle()
            await asyncio.sleep(0)
            if not _busy(self.core):
                return


def _busy(core: ManagerCore) -> bool:
    return bool(core.binder.in_flight._tasks or core.terminator.in_flight._tasks)


@dataclass
class Lab:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    config: ManagerConfig
    agents: ScriptedAgents
    user: AuthUser

    def manager(self, leader: LeaderElection | None = None, stages: SchedulerStages | None = None,
                manager_id: str = "manager-1") -> Manager:
        config = self.config.model_copy(update={"id": manager_id})
        core = build_core(config, self.sessionmaker, leader or SingleManager(), self.agents, stages)
        sessions = SessionService(self.sessionmaker, core.hub, NoMounts(), core.terminator, core.wakeup, "img:1")
        return Manager(core, sessions)

    async def create(self, manager: Manager, **request: Any) -> str:
        body = CreateSessionRequest.model_validate({"resources": {"cpu": "1", "mem": "64m"}, **request})
        return str((await manager.sessions.create(self.user, body))["id"])

    async def status(self, session_id: str) -> str:
        async with self.sessionmaker() as db:
            return str(await db.scalar(select(Session.status).where(Session.id == session_id)))

    async def history(self, session_id: str) -> list[str]:
        return await self._history_of(session_id, SessionStatusChange.status)

    async def history_reasons(self, session_id: str) -> list[str]:
        return await self._history_of(session_id, SessionStatusChange.reason)

    async def _history_of(self, session_id: str, column: Any) -> list[str]:
        async with self.sessionmaker() as db:
            rows = await db.scalars(
                select(column).where(SessionStatusChange.session_id == session_id).order_by(SessionStatusChange.id)
            )
            return list(rows.all())

    async def kernels(self, session_id: str) -> list[Kernel]:
        async with self.sessionmaker() as db:
            return list((await db.scalars(select(Kernel).where(Kernel.session_id == session_id))).all())

    async def occupied(self) -> dict[str, Any]:
        async with self.sessionmaker() as db:
            agent = await db.get(Agent, AGENT_ID)
            assert agent is not None
            return dict(agent.occupied_slots)

    async def report_running(self, manager: Manager) -> None:
        """What the agent says once its containers are up."""
        for kernel_id in list(self.agents.containers):
            await manager.core.kernel_events.running(kernel_id, f"c-{kernel_id[:8]}", agent_id=AGENT_ID)

    async def close(self) -> None:
        await self.engine.dispose()


async def open_lab(db_url: str, **config: Any) -> Lab:
    engine = create_engine(db_url)
    await upgrade_to_head(engine)
    sessionmaker = make_sessionmaker(engine)
    now = utcnow()
    capacity = NodeCapacity(tuple(range(8)), 16 << 30, {c: 0 for c in range(8)})
    user = User(id=new_id(), username="ada", role="user", created_at=now)
    async with sessionmaker() as db:
        db.add(user)
        db.add(Agent(
            id=AGENT_ID, address=AGENT_ADDRESS, status="ALIVE", capacity=capacity.to_json(),
            available_slots=capacity.slots().to_json(), occupied_slots={}, images=[],
            first_contact=now, last_heartbeat=now,
        ))
        await db.commit()
    settings = {"scheduler": {"unreachable_backoff_s": 0}, **config}
    return Lab(
        engine, sessionmaker, load_manager_config(None, **settings), ScriptedAgents(),
        AuthUser(user.id, "ada", "user", "AKTEST"),
    )
