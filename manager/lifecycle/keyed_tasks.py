"""Background tasks keyed by what they work on, so the same work never runs twice at once."""
from __future__ import annotations

import asyncio
import logging
from typing import Coroutine

log = logging.getLogger(__name__)


class KeyedTasks:
    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._tasks

    def spawn(self, key: str, work: Coroutine[object, object, None]) -> bool:
        """Start ``work`` unless a task for ``key`` is running; False (and ``work`` closed) when one is."""
        if key in self._tasks:
            work.close()
            return False
        task = asyncio.get_running_loop().create_task(work, name=f"{self._name}-{key[:8]}")
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._done(key, t))
        return True

    def _done(self, key: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("%s for %s failed", self._name, key, exc_info=task.exception())

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
