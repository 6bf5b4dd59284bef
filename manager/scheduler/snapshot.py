"""The leader's in-memory picture of the cluster, kept up to date instead of rebuilt every pass.

Each pass calls `ClusterSnapshot.refresh`:

- agents: their small columns (id, status, group, address, first contact) are read every pass; a node's
  capacity (with its GPU topology) is parsed only when the agent is new to the snapshot or comes back;
- kernels: only the rows whose status changed since the last refresh (``kernels.status_changed_at``,
  indexed, read with an overlap so clock skew between managers and slow commits are covered). Held
  allocations are keyed by (session, cluster index), which stays the same when a requeued kernel gets
  a new id, and applying a row twice changes nothing;
- every ``verify_s`` (and on the first pass) the whole picture is rebuilt from the database and
  compared; a difference is logged (it means some change was missed) and the rebuilt one is kept.

The pass's own reservations are applied by the dispatcher (`hold`), so a pass sees them at once.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.allocator import NodeState
from corral.common.errors import CorralError
from corral.common.node_resources import Allocation, NodeCapacity

from ..db.models import Agent, Kernel, Session
from ..states import ACTIVE, AgentStatus
from .node_view import NodeView

log = logging.getLogger(__name__)

KernelKey = tuple[str, int]  # (session id, cluster index)


@dataclass(frozen=True)
class Held:
    """An allocation some kernel holds on a node."""

    agent_id: str
    allocation: Allocation
    session_id: str


class ClusterSnapshot:
    def __init__(self, verify_s: float = 60.0, overlap_s: float = 10.0) -> None:
        self.nodes: dict[str, NodeView] = {}
        self.held: dict[KernelKey, Held] = {}
        self.generation = 0  # moves whenever a node's state or the node set changes
        self._verify_s = verify_s
        self._overlap = timedelta(seconds=overlap_s)
        self._cursor: datetime | None = None
        self._verified_at: datetime | None = None
        self._capacity: dict[str, dict[str, object]] = {}
        self.drift_found = 0

    async def refresh(self, db: AsyncSession, now: datetime) -> None:
        if self._verified_at is None or (now - self._verified_at).total_seconds() >= self._verify_s:
            await self._rebuild(db, now)
            return
        await self._refresh_agents(db)
        cursor, self._cursor = self._cursor, now
        assert cursor is not None
        rows = await db.execute(
            select(Kernel.session_id, Kernel.cluster_idx, Kernel.agent_id, Kernel.status, Kernel.allocation)
            .where(Kernel.status_changed_at >= cursor - self._overlap)
        )
        for session_id, idx, agent_id, status, allocation in rows:
            key = (session_id, idx)
            if status in ACTIVE and agent_id and allocation:
                self.hold(key, Held(agent_id, Allocation.from_json(allocation), session_id))
            else:
                self.unhold(key)

    # Changes ----------------------------------------------------------------------
    def adopt(self, key: KernelKey, held: Held) -> None:
        """Record a reservation the pass already applied to its node's state."""
        self.held[key] = held
        self.generation += 1

    def invalidate(self) -> None:
        """Rebuild from the database at the next refresh (a pass failed half-way)."""
        self._verified_at = None

    def hold(self, key: KernelKey, held: Held) -> None:
        current = self.held.get(key)
        if current == held:
            return
        if current is not None:
            self.unhold(key)
        node = self.nodes.get(held.agent_id)
        self.held[key] = held
        if node is not None:
            node.state.add(held.allocation)
            self.generation += 1

    def unhold(self, key: KernelKey) -> None:
        current = self.held.pop(key, None)
        if current is None:
            return
        node = self.nodes.get(current.agent_id)
        if node is not None:
            node.state.release(current.allocation)
            self.generation += 1

    # Loading ----------------------------------------------------------------------
    async def _refresh_agents(self, db: AsyncSession) -> None:
        rows = (await db.execute(
            select(Agent.id, Agent.status, Agent.resource_group, Agent.address, Agent.first_contact)
        )).all()
        alive = {row[0] for row in rows if row[1] == AgentStatus.ALIVE}
        for agent_id in [a for a in self.nodes if a not in alive]:
            del self.nodes[agent_id]
            self.generation += 1
        missing = [row[0] for row in rows if row[0] in alive and row[0] not in self.nodes]
        if missing:
            capacities = dict((await db.execute(select(Agent.id, Agent.capacity).where(Agent.id.in_(missing)))).all())
            for agent_id, _, group, address, first_contact in rows:
                if agent_id in capacities:
                    self._add_node(agent_id, group, address, first_contact, capacities[agent_id])
        for agent_id, _, group, address, _ in rows:
            node = self.nodes.get(agent_id)
            if node is not None and (node.resource_group != group or node.address != address):
                node.resource_group, node.address = group, address
                self.generation += 1

    def _add_node(self, agent_id: str, group: str, address: str, first_contact: datetime,
                  capacity: dict[str, object]) -> None:
        allocations = [h.allocation for h in self.held.values() if h.agent_id == agent_id]
        try:
            state = NodeState(NodeCapacity.from_json(capacity), allocations)
        except CorralError as exc:
            # E.g. the node came back with fewer GPUs than its kernels hold: don't place more there.
            log.warning("agent %s left out of scheduling: its allocations do not fit its capacity (%s)", agent_id, exc)
            return
        self.nodes[agent_id] = NodeView(agent_id, address, group, first_contact, state)
        self._capacity[agent_id] = capacity
        self.generation += 1

    async def _rebuild(self, db: AsyncSession, now: datetime) -> None:
        before = self._signature() if self._verified_at is not None else None
        self._cursor = now
        self.nodes.clear()
        self.held.clear()
        self._capacity.clear()
        rows = await db.execute(
            select(Kernel.session_id, Kernel.cluster_idx, Kernel.agent_id, Kernel.allocation)
            .where(Kernel.status.in_(list(ACTIVE)), Kernel.agent_id.is_not(None))
        )
        for session_id, idx, agent_id, allocation in rows:
            if allocation:
                self.held[(session_id, idx)] = Held(agent_id, Allocation.from_json(allocation), session_id)
        agents = (await db.execute(
            select(Agent.id, Agent.resource_group, Agent.address, Agent.first_contact, Agent.capacity)
            .where(Agent.status == AgentStatus.ALIVE)
        )).all()
        for agent_id, group, address, first_contact, capacity in agents:
            self._add_node(agent_id, group, address, first_contact, capacity)
        self._verified_at = now
        self.generation += 1
        if before is not None and before != self._signature():
            self.drift_found += 1
            log.warning("scheduler snapshot differed from the database (a change was missed); rebuilt it")

    def _signature(self) -> tuple[object, ...]:
        return (
            frozenset(self.nodes),
            frozenset((key, held.agent_id, held.allocation.to_json().__repr__()) for key, held in self.held.items()),
        )

    def in_group(self, group: str) -> list[NodeView]:
        return [node for node in self.nodes.values() if node.resource_group == group]


async def started_at_of(db: AsyncSession, session_ids: list[str]) -> dict[str, tuple[datetime | None, str]]:
    """(started or scheduled time, owner) of these sessions, for estimating when they end."""
    if not session_ids:
        return {}
    rows = await db.execute(
        select(Session.id, Session.started_at, Session.scheduled_at, Session.owner_id)
        .where(Session.id.in_(session_ids))
    )
    return {sid: (started or scheduled, owner) for sid, started, scheduled, owner in rows}
