"""Removing a ``TERMINATING`` session's kernels from their agents.

Started by a destroy, re-driven by `Recovery` while a session stays
``TERMINATING`` (an agent that could not be reached is asked again). A kernel
that never got a container ends at once; one on a lost agent ends with that
reason (its container is removed by the agent's next heartbeat if it returns).
"""
from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.errors import CorralError, NotFound
from corral.common.session_status import TERMINAL, SessionStatus

from ..db.models import Agent, Kernel, Session
from ..states import AgentStatus
from .keyed_tasks import KeyedTasks
from .kernel_events import KernelEvents

log = logging.getLogger(__name__)

NOT_STARTED = frozenset({SessionStatus.PENDING, SessionStatus.SCHEDULED})


class KernelDestroyer(Protocol):
    async def destroy_kernel(self, address: str, kernel_id: str, reason: str) -> Any: ...


class Terminator:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], agents: KernelDestroyer, kernel_events: KernelEvents
    ) -> None:
        self._sessionmaker = sessionmaker
        self._agents = agents
        self._kernel_events = kernel_events
        self.in_flight = KeyedTasks("terminate")

    def spawn(self, session_id: str) -> bool:
        return self.in_flight.spawn(session_id, self.terminate(session_id))

    def spawn_fail_start(self, session_id: str, reason: str) -> bool:
        return self.in_flight.spawn(session_id, self.fail_start(session_id, reason))

    async def close(self) -> None:
        await self.in_flight.close()

    async def terminate(self, session_id: str) -> None:
        async with self._sessionmaker() as db:
            sess = await db.get(Session, session_id)
            if sess is None or sess.status != SessionStatus.TERMINATING:
                return
            reason = sess.status_reason or "destroyed"
            rows = await _live_kernels(db, session_id)
        for kernel_id, kernel_status, agent_id, address, agent_status in rows:
            if kernel_status in NOT_STARTED or address is None:
                await self._kernel_events.ended(kernel_id, None, f"{reason} (never started)", None)
            elif agent_status != AgentStatus.ALIVE:
                await self._kernel_events.ended(
                    kernel_id, None, f"{reason}; agent {agent_id} is {str(agent_status).lower()}, "
                    "its container is removed if the agent returns", None,
                )
            else:
                await self.remove_kernel(kernel_id, agent_id, address, reason)

    async def fail_start(self, session_id: str, reason: str) -> None:
        """A session that could not start in time: remove what its agents made, and fail it with ``reason``."""
        async with self._sessionmaker() as db:
            rows = await _live_kernels(db, session_id)
        log.warning("session %s failed: %s", session_id, reason)
        for kernel_id, kernel_status, agent_id, address, agent_status in rows:
            if kernel_status not in NOT_STARTED and address is not None and agent_status == AgentStatus.ALIVE:
                try:
                    await self._agents.destroy_kernel(address, kernel_id, reason)
                except CorralError as exc:
                    log.info("kernel %s: %s; the next heartbeat removes it if it exists", kernel_id, exc)
            await self._kernel_events.ended(kernel_id, None, reason, None, failed=True)

    async def remove_kernel(self, kernel_id: str, agent_id: str, address: str, reason: str) -> None:
        """Ask the agent to remove the kernel's container, and end the kernel with what it says;
        an agent that cannot be reached now is asked again later (`Recovery`, heartbeats)."""
        try:
            result = await self._agents.destroy_kernel(address, kernel_id, reason)
        except NotFound:
            await self._kernel_events.ended(kernel_id, None, f"{reason} (container already gone)", None)
            return
        except CorralError as exc:
            log.warning("could not destroy kernel %s on agent %s yet (%s); will retry", kernel_id, agent_id, exc)
            return
        result = result if isinstance(result, dict) else {}
        await self._kernel_events.ended(kernel_id, result.get("exit_code"), reason, result.get("logs"))


async def _live_kernels(db: AsyncSession, session_id: str) -> list[Any]:
    return list(
        (
            await db.execute(
                select(Kernel.id, Kernel.status, Kernel.agent_id, Agent.address, Agent.status)
                .join(Agent, Agent.id == Kernel.agent_id, isouter=True)
                .where(Kernel.session_id == session_id, Kernel.status.not_in(list(TERMINAL)))
                .order_by(Kernel.cluster_idx)
            )
        ).all()
    )
