"""Bind stage: ask the chosen agent to start the session's kernels.

``SCHEDULED → PREPARING`` is taken as a guarded move before the agent is
asked, so a session destroyed meanwhile is never started. Then:

- the agent answers: the kernel is being created (it reports ``running`` or
  ``failed`` later). If the session was destroyed while we asked, the kernel
  is removed at once.
- the agent cannot be reached (connection refused, timeout, 503): the session
  goes back to ``PENDING`` with its reservation released and the reason
  recorded, and the agent is skipped for a short cool-down; it runs once an
  agent can take it.
- the agent has no room for it (its own view of the node disagrees for a
  moment): the same, with that reason.
- any other answer from the agent (bad image, bad mount) is definite:
  the kernel and the session fail with that reason.

Creation is idempotent on the agent, so re-driving a ``PREPARING`` session
(after a manager crash) sends the same request again.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.cluster import ClusterPeer, ClusterSpec, kernel_name
from corral.common.errors import Conflict, CorralError, KernelDestroyed, ServiceUnavailable
from corral.common.ssh_keys import public_line_of
from corral.common.ids import new_id
from corral.common.session_status import TERMINAL, SessionStatus

from ..db.models import Agent, Kernel, Session
from ..events import EventHub
from ..ssh_keys import authorized_keys
from ..lifecycle.keyed_tasks import KeyedTasks
from ..lifecycle.kernel_events import KernelEvents
from ..lifecycle.moves import move_kernels, move_session, move_sessions
from ..lifecycle.occupancy import recalc_occupied
from ..lifecycle.terminator import Terminator
from ..lifecycle.transitions import STARTING
from .cooldown import AgentCooldown
from .wakeup import Wakeup

log = logging.getLogger(__name__)

class KernelAgentClient(Protocol):
    async def create_kernel(self, address: str, spec: dict[str, Any]) -> Any: ...

    async def destroy_kernel(self, address: str, kernel_id: str, reason: str) -> Any: ...


@dataclass(frozen=True)
class Placement:
    kernel_id: str
    agent_id: str
    address: str
    spec: dict[str, Any]


def node_host(address: str | None) -> str | None:
    """The host part of an agent's address (``http://10.0.0.5:6001`` → ``10.0.0.5``)."""
    return urlsplit(address).hostname if address else None


def cluster_spec(sess: Session, kernel: Kernel, peers: list[tuple[Kernel, str | None]]) -> dict[str, Any] | None:
    """What the kernel's agent needs to know of the session's other kernels (None: a session of one)."""
    if (sess.cluster_size or 1) <= 1:
        return None
    multi = sess.cluster_mode == "multi-node"
    ports = (peers[0][0].allocation or {}).get("ports") or {} if peers else {}
    private = sess.cluster_ssh_key or ""
    spec = ClusterSpec(
        size=sess.cluster_size, mode=sess.cluster_mode, idx=kernel.cluster_idx,  # type: ignore[arg-type]
        peers=[ClusterPeer(name=kernel_name(k.cluster_idx), idx=k.cluster_idx,
                           address=node_host(address) if multi else None) for k, address in peers],
        port_base=int(ports.get("base", 0)) if multi else 0, port_count=int(ports.get("count", 0)) if multi else 0,
        ssh_private_key=private,
        ssh_public_key=public_line_of(private.encode(), f"corral-cluster-{sess.name}") if private else "",
    )
    return spec.model_dump()


def kernel_spec(sess: Session, kernel: Kernel, ssh_keys: list[str] | None = None,
                peers: list[tuple[Kernel, str | None]] | None = None) -> dict[str, Any]:
    return {
        "kernel_id": kernel.id,
        "session_id": sess.id,
        "session_name": sess.name,
        "owner_id": sess.owner_id,
        "cluster_idx": kernel.cluster_idx,
        "type": sess.type,
        "image": sess.image,
        "command": sess.command,
        "env": sess.env,
        "allocation": kernel.allocation,
        "mounts": [
            {k: m[k] for k in ("name", "host_path", "container_path", "read_only")}
            for m in sess.mounts or []
            if isinstance(m, dict) and m.get("host_path")
        ],
        "ssh_authorized_keys": ssh_keys or [],
        "cluster": cluster_spec(sess, kernel, peers or [(kernel, None)]),
    }


class Binder:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        hub: EventHub,
        agents: KernelAgentClient,
        kernel_events: KernelEvents,
        terminator: Terminator,
        wakeup: Wakeup,
        cooldown: AgentCooldown,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._hub = hub
        self._agents = agents
        self._kernel_events = kernel_events
        self._terminator = terminator
        self._wakeup = wakeup
        self._cooldown = cooldown
        self.in_flight = KeyedTasks("bind")

    def spawn(self, session_id: str) -> bool:
        """Bind in the background (once per session at a time)."""
        return bool(self.spawn_many([session_id]))

    def spawn_many(self, session_ids: list[str]) -> list[str]:
        """Bind these sessions in one background task; those already being bound are left to it."""
        return self.in_flight.spawn_many(session_ids, self.bind_many)

    def spawn_redrive(self, session_id: str) -> bool:
        return self.in_flight.spawn(session_id, self.redrive(session_id))

    async def close(self) -> None:
        await self.in_flight.close()

    async def bind(self, session_id: str) -> None:
        await self.bind_many([session_id])

    async def bind_many(self, session_ids: list[str]) -> None:
        """``SCHEDULED → PREPARING`` for all in one transaction, then ask their agents, concurrently."""
        async with self._sessionmaker() as db:
            # Read before the move (which changes no placement); the move decides which sessions go ahead.
            placements = await self._placements(db, session_ids, only={SessionStatus.SCHEDULED})
            won = await move_sessions(
                db, self._hub,
                {sid: f"agent {kernels[0].agent_id} is creating the container" for sid, kernels in placements.items()},
                SessionStatus.PREPARING, only_from={SessionStatus.SCHEDULED},
            )
            if not won:
                return  # destroyed (or re-queued) since they were placed: nothing to start
            await move_kernels(db, SessionStatus.PREPARING, "", session_ids=won, only_from={SessionStatus.SCHEDULED})
            await db.commit()
        await asyncio.gather(*(self._create(sid, placements.get(sid, [])) for sid in won))

    async def redrive(self, session_id: str) -> None:
        """Send the creation of a ``PREPARING`` session's kernels again (idempotent on the agent)."""
        async with self._sessionmaker() as db:
            status = await db.scalar(select(Session.status).where(Session.id == session_id))
            if status != SessionStatus.PREPARING:
                return
            placements = (await self._placements(db, [session_id], only={SessionStatus.PREPARING})).get(session_id)
        if placements:
            log.info("re-sending kernel creation for session %s", session_id)
            await self._create(session_id, placements)

    async def requeue(self, session_id: str, reason: str) -> bool:
        """Back to ``PENDING`` with the reservation released; False when the session had moved on."""
        async with self._sessionmaker() as db:
            if not await move_session(db, self._hub, session_id, SessionStatus.PENDING, reason, only_from=STARTING):
                return False
            held_on = (await db.scalars(select(Kernel.agent_id).where(Kernel.session_id == session_id))).all()
            moved = await move_kernels(
                db, SessionStatus.PENDING, reason, session_id=session_id, only_from=STARTING,
                agent_id=None, allocation=None, container_id=None,
            )
            for kernel_id in moved:
                # A new id per placement: whatever the old one left on an agent (a container, a tombstone,
                # a late event) can never be mistaken for the next placement.
                await db.execute(update(Kernel).where(Kernel.id == kernel_id).values(id=new_id()))
            await recalc_occupied(db, held_on)
            await db.commit()
        log.info("session %s back in the queue: %s", session_id, reason)
        self._wakeup.trigger()
        return True

    async def _placements(
        self, db: AsyncSession, session_ids: list[str], only: frozenset[SessionStatus] | set[SessionStatus] | None = None
    ) -> dict[str, list[Placement]]:
        sessions = {
            sess.id: sess
            for sess in (
                await db.scalars(
                    select(Session).where(Session.id.in_(session_ids)).execution_options(populate_existing=True)
                )
            ).all()
        }
        rows = (
            await db.execute(
                select(Kernel, Agent.address)
                .join(Agent, Agent.id == Kernel.agent_id)
                .where(Kernel.session_id.in_(session_ids))
                .order_by(Kernel.session_id, Kernel.cluster_idx)
                .execution_options(populate_existing=True)
            )
        ).all()
        keys = await authorized_keys(db, {sess.owner_id for sess in sessions.values()})
        peers: dict[str, list[tuple[Kernel, str | None]]] = {}
        for kernel, address in rows:
            peers.setdefault(kernel.session_id, []).append((kernel, address))
        placements: dict[str, list[Placement]] = {}
        for kernel, address in rows:
            if only is None or kernel.status in only:
                sess = sessions[kernel.session_id]
                spec = kernel_spec(sess, kernel, keys.get(sess.owner_id), peers[kernel.session_id])
                placements.setdefault(kernel.session_id, []).append(
                    Placement(kernel.id, kernel.agent_id, address, spec)  # type: ignore[arg-type]
                )
        return placements

    async def _create(self, session_id: str, placements: list[Placement]) -> None:
        created: list[Placement] = []
        for placement in placements:
            try:
                await self._agents.create_kernel(placement.address, placement.spec)
            except ServiceUnavailable as exc:
                self._cooldown.note_unreachable(placement.agent_id)
                log.warning("agent %s unreachable while binding session %s: %s", placement.agent_id, session_id, exc)
                await self._requeue_gang(session_id, created, f"agent {placement.agent_id} could not be reached "
                                                              f"({exc.detail}); back in the queue")
                return
            except KernelDestroyed as exc:
                # Destroyed while this create was on its way: the destroy decides how the session ends.
                if not await self._requeue_gang(session_id, created,
                                                f"agent {placement.agent_id}: {exc.detail}; back in the queue"):
                    await self._kernel_events.ended(placement.kernel_id, None, exc.detail, None)
                return
            except Conflict as exc:
                # The agent's own view says no room (it has not freed a kernel that ended yet, say): not final.
                self._cooldown.note_unreachable(placement.agent_id)
                await self._requeue_gang(session_id, created, f"agent {placement.agent_id} has no room for it now "
                                                              f"({exc.detail}); back in the queue")
                return
            except CorralError as exc:
                log.warning("agent %s refused kernel %s: %s", placement.agent_id, placement.kernel_id, exc.detail)
                await self._kernel_events.ended(
                    placement.kernel_id, None, f"could not start: {exc.detail}", None, failed=True
                )
                return
            created.append(placement)
            await self._remove_if_unwanted(session_id, placement)

    async def _requeue_gang(self, session_id: str, created: list[Placement], reason: str) -> bool:
        """`requeue`, after removing the kernels of the gang that its agents already took: a cluster session
        goes back to the queue whole, never leaving some of its kernels behind."""
        for placement in created:
            try:
                await self._agents.destroy_kernel(placement.address, placement.kernel_id, reason)
            except CorralError as exc:  # the agent's next report of it finds no such kernel and removes it
                log.info("kernel %s on agent %s not removed yet: %s", placement.kernel_id, placement.agent_id, exc)
        return await self.requeue(session_id, reason)

    async def _remove_if_unwanted(self, session_id: str, placement: Placement) -> None:
        """The session was destroyed while the agent was creating its kernel: remove the kernel now."""
        async with self._sessionmaker() as db:
            status = await db.scalar(select(Session.status).where(Session.id == session_id))
        if status not in TERMINAL and status != SessionStatus.TERMINATING:
            return
        await self._terminator.remove_kernel(
            placement.kernel_id, placement.agent_id, placement.address,
            "session destroyed while its container was being created",
        )
