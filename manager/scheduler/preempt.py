"""Which running sessions to preempt so that a higher-priority pending one fits (resource groups with
``preemption`` on).

Only for a session that cannot start now for lack of free resources (its quotas allow it). On each node
of the group: first what is already going away (sessions ``TERMINATING``: preempted by an earlier pass,
or destroyed), then ``RUNNING`` *batch* sessions of strictly lower priority, lowest priority first and,
within one priority, the most recently started first (the least work lost), until the request fits; then
every one not needed after all is spared again, so the set is as small as that order allows. Interactive
sessions are never preempted. Among the nodes where it works, the one whose victims have the lowest
highest priority wins, then the fewest victims, then the least run time lost, then registration order.

Pure: the pass's own node states are changed and restored, nothing else is read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.allocator import NodeState
from corral.common.node_resources import Allocation
from corral.common.session_status import SessionStatus
from corral.common.slots import ResourceSlot

from ..db.models import Session
from .node_view import NodeView

PREEMPTABLE_TYPE = "batch"
_READ_CHUNK = 1000


@dataclass(frozen=True)
class ActiveSession:
    """A session holding resources on a node, as preemption sees it."""

    id: str
    type: str
    status: str
    priority: int
    started_at: datetime | None = None


@dataclass
class PreemptionChoice:
    agent_id: str
    victims: list[ActiveSession]  # RUNNING sessions to preempt now
    going: list[str]  # sessions already TERMINATING whose resources it waits for
    frees: list[Allocation] = field(default_factory=list)  # on the node, once victims and going are gone

    @property
    def waits_for(self) -> list[str]:
        return [*self.going, *(v.id for v in self.victims)]


def choose_victims(
    request: ResourceSlot, priority: int, nodes: Sequence[NodeView],
    holding: Callable[[str], Iterable[tuple[str, Allocation]]], active: Mapping[str, ActiveSession],
    claimed: set[str], now_ts: float,
) -> PreemptionChoice | None:
    """The best node and the sessions to end there so that ``request`` fits (see the module's text), or
    None. ``holding(agent)``: (session id, allocation) held there; ``claimed``: sessions already chosen
    (or waited for) by an earlier session of this pass, left out."""
    best: tuple[tuple[float, ...], PreemptionChoice] | None = None
    for order, node in enumerate(sorted(nodes, key=lambda n: (n.first_contact, n.agent_id))):
        by_session: dict[str, list[Allocation]] = {}
        for sid, allocation in holding(node.agent_id):
            if sid not in claimed and sid in active:
                by_session.setdefault(sid, []).append(allocation)
        going = [sid for sid in by_session if active[sid].status == SessionStatus.TERMINATING]
        eligible = sorted(
            (active[sid] for sid in by_session
             if active[sid].status == SessionStatus.RUNNING and active[sid].type == PREEMPTABLE_TYPE
             and active[sid].priority < priority),
            key=lambda a: (a.priority, -_started(a, now_ts), a.id),
        )
        if not going and not eligible:
            continue
        found = _on_node(node.state, request, by_session, going, eligible)
        if found is None:
            continue
        used_going, victims = found
        key = (
            max((v.priority for v in victims), default=-1), len(victims),
            sum(max(0.0, now_ts - _started(v, now_ts)) for v in victims), order,
        )
        if best is None or key < best[0]:
            frees = [a for sid in [*used_going, *(v.id for v in victims)] for a in by_session[sid]]
            best = (key, PreemptionChoice(node.agent_id, victims, used_going, frees))
    return best[1] if best is not None else None


def _started(session: ActiveSession, now_ts: float) -> float:
    return session.started_at.timestamp() if session.started_at is not None else now_ts


def _on_node(
    state: NodeState, request: ResourceSlot, by_session: Mapping[str, list[Allocation]], going: list[str],
    eligible: list[ActiveSession],
) -> tuple[list[str], list[ActiveSession]] | None:
    """(going sessions used, victims) that let ``request`` fit on this node, or None; ``state`` restored."""
    def fits() -> bool:
        return state.try_allocate(request, with_cores=False) is not None

    released: set[str] = set()

    def release(sid: str) -> None:
        for allocation in by_session[sid]:
            state.release(allocation)
        released.add(sid)

    def put_back(sid: str) -> None:
        for allocation in by_session[sid]:
            state.add(allocation)
        released.discard(sid)

    try:
        if fits():
            return None  # it fits here already: not a matter for preemption
        for sid in going:
            release(sid)
        victims: list[ActiveSession] = []
        for candidate in eligible:
            if fits():
                break
            release(candidate.id)
            victims.append(candidate)
        if not fits():
            return None
        # Spare whatever is not needed after all: the most valuable victims first, then what is going away.
        for victim in reversed(list(victims)):
            put_back(victim.id)
            if fits():
                victims.remove(victim)
            else:
                release(victim.id)
        used_going = []
        for sid in going:
            put_back(sid)
            if not fits():
                release(sid)
                used_going.append(sid)
        return used_going, victims
    finally:
        for sid in list(released):
            put_back(sid)


async def load_active(db: AsyncSession, session_ids: Iterable[str]) -> dict[str, ActiveSession]:
    """Type, status, priority and start of these sessions (those holding nodes of preempting groups)."""
    ids = sorted(set(session_ids))
    found: dict[str, ActiveSession] = {}
    for start in range(0, len(ids), _READ_CHUNK):
        rows = await db.execute(
            select(Session.id, Session.type, Session.status, Session.priority, Session.started_at)
            .where(Session.id.in_(ids[start:start + _READ_CHUNK]))
        )
        for sid, kind, status, priority, started in rows:
            found[sid] = ActiveSession(sid, kind, status, priority if priority is not None else 50, started)
    return found
