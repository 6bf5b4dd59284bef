"""Agents the bind stage could not reach a moment ago: skipped by the scheduler for a short while,
so a session does not bounce on a dead agent before its heartbeats stop long enough to mark it LOST."""
from __future__ import annotations

import time


class AgentCooldown:
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._until: dict[str, float] = {}

    def note_unreachable(self, agent_id: str) -> None:
        self._until[agent_id] = time.monotonic() + self._seconds

    def cooling(self, agent_id: str) -> bool:
        until = self._until.get(agent_id)
        if until is None:
            return False
        if time.monotonic() >= until:
            del self._until[agent_id]
            return False
        return True
