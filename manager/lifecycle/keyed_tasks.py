"""Background tasks keyed by what they work on, so the same work never runs twice at once."""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Coroutine, Iterable

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

    def spawn_many(self, keys: Iterable[str], make_work: Callable[[list[str]], Coroutine[object, object, None]]) -> list[str]:
        """One task for all of ``keys`` not already in flight (``make_work`` gets those); the keys it took."""
        free = [key for key in dict.fromkeys(keys) if key not in self._tasks]
        if not free:
            return []
        task = asyncio.get_running_loop().create_task(make_work(free), name=f"{self._name}-{len(free)}")
        for key in free:
            self._tasks[key] = task
            task.add_done_callback(lambda t, key=key: self._done(key, t))
        return free

    def _done(self, key: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("%s for %s failed", self._name, key, exc_info=task.exception())

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*set(self._tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        tasks = set(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
