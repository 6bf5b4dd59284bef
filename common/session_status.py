"""Session and kernel states (DESIGN §3), shared by the manager and the client."""
from __future__ import annotations

from enum import StrEnum


class SessionStatus(StrEnum):
    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"
    PREPARING = "PREPARING"
    RUNNING = "RUNNING"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({SessionStatus.TERMINATED, SessionStatus.ERROR, SessionStatus.CANCELLED})
# Sessions that hold (or are about to hold) resources on an agent.
ACTIVE = frozenset({SessionStatus.SCHEDULED, SessionStatus.PREPARING, SessionStatus.RUNNING, SessionStatus.TERMINATING})
