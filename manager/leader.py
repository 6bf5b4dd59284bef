"""Who runs the scheduler when several managers share one database.

``SingleManager`` always leads (embedded mode, no etcd). ``EtcdLeaderElection``
holds a key under a lease: the holder keeps refreshing it; if it dies, the
lease expires and another manager takes the key.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger(__name__)


class LeaderElection(Protocol):
    @property
    def is_leader(self) -> bool: ...

    @property
    def term(self) -> int | None:
        """Identifies the current leadership and only grows across leaders (the fencing token's source);
        None where there is one manager only."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class SingleManager:
    is_leader = True
    term = None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class EtcdLeaderElection:
    def __init__(self, client: "object", key: str, manager_id: str, ttl: int = 10) -> None:
        self._client = client
        self._key = key.encode()
        self._me = manager_id.encode()
        self._ttl = ttl
        self._lease: object | None = None
        self._leading = False
        self._term: int | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def term(self) -> int | None:
        return self._term if self._leading else None

    async def start(self) -> None:
        await self._try_acquire()
        self._task = asyncio.get_running_loop().create_task(self._keep(), name="leader-election")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._leading and self._lease is not None:
            try:
                await self._lease.revoke()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - it expires by itself anyway
                pass
        self._leading = False

    async def _try_acquire(self) -> None:
        client = self._client
        if self._lease is None:
            self._lease = await client.lease(self._ttl)  # type: ignore[attr-defined]
        else:
            response = await self._lease.refresh()  # type: ignore[attr-defined]
            if not response or getattr(response[0], "TTL", 1) <= 0:
                self._lease = await client.lease(self._ttl)  # type: ignore[attr-defined]
                self._set_leading(False)
        tx = client.transactions  # type: ignore[attr-defined]
        await client.transaction(  # type: ignore[attr-defined]
            compare=[tx.version(self._key) == 0],
            success=[tx.put(self._key, self._me, self._lease)],
            failure=[],
        )
        current = await client.get(self._key)  # type: ignore[attr-defined]
        mine = current is not None and current.value == self._me
        # The revision that created the key: a new leader's is always higher than the last one's.
        self._term = int(current.create_revision) if mine else None
        self._set_leading(mine)

    def _set_leading(self, leading: bool) -> None:
        if leading != self._leading:
            log.info("scheduler lead %s", "acquired" if leading else "lost")
        self._leading = leading

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self._try_acquire()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - etcd hiccups: step down, try again
                log.warning("leader election: etcd unreachable (%s); stepping down", exc)
                self._set_leading(False)
                self._lease = None
