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
- ``TERMINATING → PENDING``, *guarded*: only for a session being preempted (its ``status_reason``
  starts with `PREEMPTED_MARK`, written by the scheduler's ``RUNNING → TERMINATING``): once its
  containers are gone it goes back to the queue instead of ending. A destroy meanwhile rewrites the
  reason (`preemption.stop_preemption`), so the move is no longer allowed and the session ends.

Terminal states (``TERMINATED``, ``ERROR``, ``CANCELLED``) have no way out.
Kernels follow the same table; a kernel has no ``TERMINATING`` of its own (it
stays ``RUNNING`` until its container is gone) but the move exists so that the
tables stay one shape. A kernel's ``RUNNING → PENDING`` (its container is gone,
the placement released, a new id given) is guarded the same way: only while its
session is ``TERMINATING`` with `PREEMPTED_MARK`.

`GUARDED_SESSION_MOVES` / `GUARDED_KERNEL_MOVES` list the (source, target)
pairs that `moves` takes only with that extra condition in the same UPDATE.
"""
from __future__ import annotations

from typing import Mapping

from corral.common.session_status import TERMINAL, SessionStatus

S = SessionStatus

# The start of a session's status_reason while it is being preempted: the durable record that the end of
# its kernels means "back in the queue", not TERMINATED (read again after a manager crash).
PREEMPTED_MARK = "preempted by session "

# target -> the statuses it may be entered from
SESSION_MOVES: Mapping[SessionStatus, frozenset[SessionStatus]] = {
    S.PENDING: frozenset({S.SCHEDULED, S.PREPARING, S.TERMINATING}),
    S.SCHEDULED: frozenset({S.PENDING}),
    S.PREPARING: frozenset({S.SCHEDULED}),
    S.RUNNING: frozenset({S.PREPARING}),
    S.TERMINATING: frozenset({S.SCHEDULED, S.PREPARING, S.RUNNING}),
    S.TERMINATED: frozenset({S.PREPARING, S.RUNNING, S.TERMINATING}),
    S.ERROR: frozenset({S.SCHEDULED, S.PREPARING, S.RUNNING, S.TERMINATING}),
    S.CANCELLED: frozenset({S.PENDING}),
}

KERNEL_MOVES: Mapping[SessionStatus, frozenset[SessionStatus]] = {
    S.PENDING: frozenset({S.SCHEDULED, S.PREPARING, S.RUNNING}),
    S.SCHEDULED: frozenset({S.PENDING}),
    S.PREPARING: frozenset({S.SCHEDULED}),
    S.RUNNING: frozenset({S.PREPARING}),
    S.TERMINATING: frozenset({S.RUNNING}),
    # A kernel that never got a container ends TERMINATED ("never started") too.
    S.TERMINATED: frozenset({S.PENDING, S.SCHEDULED, S.PREPARING, S.RUNNING, S.TERMINATING}),
    S.ERROR: frozenset({S.PENDING, S.SCHEDULED, S.PREPARING, S.RUNNING, S.TERMINATING}),
    S.CANCELLED: frozenset({S.PENDING, S.SCHEDULED}),
}


# (source, target) moves allowed only for a session being preempted (status_reason starts with
# PREEMPTED_MARK; for a kernel: its session's, while that session is TERMINATING).
GUARDED_SESSION_MOVES: frozenset[tuple[SessionStatus, SessionStatus]] = frozenset({(S.TERMINATING, S.PENDING)})
GUARDED_KERNEL_MOVES: frozenset[tuple[SessionStatus, SessionStatus]] = frozenset({(S.RUNNING, S.PENDING)})


def is_preempting(status: str | None, reason: str | None) -> bool:
    """Whether a session in ``status`` with ``reason`` is being preempted (goes back to the queue)."""
    return status == S.TERMINATING and (reason or "").startswith(PREEMPTED_MARK)


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
    for table, guarded in ((SESSION_MOVES, GUARDED_SESSION_MOVES), (KERNEL_MOVES, GUARDED_KERNEL_MOVES)):
        for source, target in guarded:
            assert source in table[target], f"guarded move {source} → {target} missing from its table"


_check_tables()
