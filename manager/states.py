"""Session, kernel and agent states."""
from __future__ import annotations

from enum import StrEnum

from corral.common.session_status import ACTIVE, TERMINAL, SessionStatus

__all__ = ["ACTIVE", "TERMINAL", "AgentStatus", "SessionStatus"]


class AgentStatus(StrEnum):
    ALIVE = "ALIVE"
    LOST = "LOST"
    TERMINATED = "TERMINATED"
