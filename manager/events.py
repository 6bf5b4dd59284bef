"""In-process publish/subscribe of session events.

Cross-manager delivery goes through the database (the status history table);
this hub only wakes up local listeners at once instead of at the next poll.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class SessionEventBase:
    session_id: str
    owner_id: str
    status: str
    reason: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "status": self.status, "reason": self.reason, "at": self.at.isoformat()}


@dataclass(frozen=True)
class SessionStatusEvent(SessionEventBase):
    """A state transition, also stored in the status history."""


@dataclass(frozen=True)
class SessionProgressEvent(SessionEventBase):
    """Ephemeral news while a session starts (an image pull, say): never stored in the
    status history, only seen by listeners on the manager that heard it from the agent."""


SessionEvent = SessionStatusEvent | SessionProgressEvent


class EventHub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[SessionEvent]] = set()

    def publish(self, event: SessionEvent) -> None:
        for queue in list(self._subscribers):
            queue.put_nowait(event)

    def subscribe(self) -> "Subscription":
        return Subscription(self)


class Subscription:
    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self.queue: asyncio.Queue[SessionEvent] = asyncio.Queue()

    def __enter__(self) -> "Subscription":
        self._hub._subscribers.add(self.queue)
        return self

    def __exit__(self, *exc: object) -> None:
        self._hub._subscribers.discard(self.queue)
