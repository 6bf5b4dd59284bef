"""How other services ask for a scheduler pass without knowing the scheduler."""
from __future__ import annotations

import asyncio
from typing import Protocol


class Wakeup(Protocol):
    def trigger(self) -> None: ...


class SchedulerWakeup:
    """Set by anyone (new session, freed resources, a returning agent); awaited by the scheduler loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def trigger(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """True when triggered, False when ``timeout`` passed first; clears the trigger either way."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._event.clear()
