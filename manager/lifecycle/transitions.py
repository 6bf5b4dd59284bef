"""The allowed status moves of sessions and kernels, defined once (DESIGN §3).

Every writer applies a move as a compare-and-set: ``UPDATE … WHERE status IN
(sources of the move)``. A writer that loses a race (the row moved on since it
last looked) updates nothing, learns so from the row count and backs off.

Session moves and why each exists:

- ``PENDING → SCHEDULED``: the scheduler reserved resources on an agent.
- ``PENDING → CANCELLED``: destroyed before it was placed.
- ``SCHEDULED → PREPARING``: the bind stage is about to ask the agent for the container.
- ``SCHEDULED | PREPARING → PENDING``: back in the queue, reservation released
  (the agent was unreachable, lost, or no longer knows the kernel).
- ``PREPARING → RUNNING``: every kernel's container is up.
- ``SCHEDULED | PREPARING | RUNNING → TERMINATING``: destroyed by its owner,
  or by a limit; the containers are being removed.
- ``PREPARING | RUNNING | TERMINATING → TERMINATED``: the containers ended
  (a batch command finished, the destroy completed).
- ``SCHEDULED | PREPARING | RUNNING | TERMINATING → ERROR``: a definite failure.

Terminal states (``TERMINATED``, ``ERROR``, ``CANCELLED``) have no way out.
Kernels follow the same table; a kernel has no ``TERMINATING`` of its own (it
stays ``RUNNING`` until its container is gone) but the move exists so that the
tables stay one shape.
"""
from __future__ import annotations

from typing import Mapping

from corral.common.session_status import TERMINAL, SessionStatus

S = SessionStatus

# target -> the statuses it may be entered from
SESSION_MOVES: Mapping[SessionStatus, frozenset[SessionStatus]] = {
    S.PENDING: frozenset({S.SCHEDULED, S.PREPARING}),
    S.SCHEDULED: frozenset({S.PENDING}),
    S.PREPARING: frozenset({S.SCHEDULED}),
    S.RUNNING: frozenset({S.PREPARING}),
    S.TERMINATING: frozenset({S.SCHEDULED, S.PREPARING, S.RUNNING}),
    S.TERMINATED: frozenset({S.PREPARING, S.RUNNING, S.TERMINATING}),
    S.ERROR: frozenset({S.SCHEDULED, S.PREPARING, S.RUNNING, S.TERMINATING}),
    S.CANCELLED: frozenset({S.PENDING}),
}

KERNEL_MOVES: Mapping[SessionStatus, frozenset[SessionStatus]] = {
    S.PENDING: frozenset({S.SCHEDULED, S.PREPARING}),
    S.SCHEDULED: frozenset({S.PENDING}),
    S.PREPARING: frozenset({S.SCHEDULED}),
    S.RUNNING: frozenset({S.PREPARING}),
    S.TERMINATING: frozenset({S.RUNNING}),
    # A kernel that never got a container ends TERMINATED ("never started") too.
    S.TERMINATED: frozenset({S.PENDING, S.SCHEDULED, S.PREPARING, S.RUNNING, S.TERMINATING}),
    S.ERROR: frozenset({S.PENDING, S.SCHEDULED, S.PREPARING, S.RUNNING, S.TERMINATING}),
    S.CANCELLED: frozenset({S.PENDING, S.SCHEDULED}),
}


# A session that holds a placement but has no running container yet.
STARTING: frozenset[SessionStatus] = frozenset({S.SCHEDULED, S.PREPARING})


def sources(table: Mapping[SessionStatus, frozenset[SessionStatus]], target: SessionStatus,
            only_from: frozenset[SessionStatus] | set[SessionStatus] | None = None) -> frozenset[SessionStatus]:
    """The statuses ``target`` may be entered from, narrowed by the caller's own expectation."""
    allowed = table[target]
    return allowed if only_from is None else allowed & frozenset(only_from)


def can_move(table: Mapping[SessionStatus, frozenset[SessionStatus]], current: str, target: SessionStatus) -> bool:
    return current in table[target]


def _check_tables() -> None:
    for table in (SESSION_MOVES, KERNEL_MOVES):
        assert set(table) == set(SessionStatus), "every status needs an entry"
        for target, froms in table.items():
            assert not froms & TERMINAL, f"{target}: terminal states have no way out"


_check_tables()
