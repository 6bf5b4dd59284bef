"""The agent's side of the manager conversation: heartbeats and kernel events.

Events are queued and retried until the manager accepts them, so a manager
restart loses nothing; heartbeats carry the full kernel list, so the manager
can reconcile even what an event could not tell it. The two never overtake
each other: a heartbeat first delivers the events queued before it, so the
manager never hears "kernel K is gone" (no longer listed) before it heard how
K ended (its exit code).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

import aiohttp

from corral.common.cluster_secret import bearer_headers

from .config import ManagerLinkConfig

log = logging.getLogger(__name__)


class EventsRefused(Exception):
    """The manager answered a batch of events with a client error: sending it again cannot help."""


class ManagerLink:
    def __init__(
        self,
        config: ManagerLinkConfig,
        agent_id: str,
        heartbeat_payload: Callable[[], Awaitable[dict[str, Any]]],
        on_destroy: Callable[[list[str]], Awaitable[None]],
    ) -> None:
        self.config = config
        self._agent_id = agent_id
        self._payload = heartbeat_payload
        self._on_destroy = on_destroy
        self._events: list[dict[str, Any]] = []
        self._events_waiting = asyncio.Event()
        self._send_lock = asyncio.Lock()  # one conversation at a time, in order
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._destroys: set[asyncio.Task[None]] = set()
        self._connected = False
        self.registered = asyncio.Event()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                headers=bearer_headers(self.config.cluster_secret),
                timeout=aiohttp.ClientTimeout(total=15),
            )
        return self._http

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._heartbeat_loop(), name="heartbeat"),
            loop.create_task(self._event_loop(), name="kernel-events"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush_events()
        await asyncio.gather(*self._destroys, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    def send_event(self, kind: str, kernel_id: str, **fields: Any) -> None:
        self._events.append({"kind": kind, "kernel_id": kernel_id, **fields})
        self._events_waiting.set()

    async def heartbeat_now(self) -> None:
        async with self._send_lock:
            await self._deliver_queued()
            payload = await self._payload()
            async with self.http.post(f"{self.config.url}/internal/v1/agents/heartbeat", json=payload) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"manager answered {resp.status}: {(await resp.text())[:300]}")
                answer = await resp.json()
        if not self._connected:
            log.info("connected to manager at %s", self.config.url)
            self._connected = True
        self.registered.set()
        if answer.get("destroy"):
            await self._on_destroy(answer["destroy"])

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self.heartbeat_now()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep trying; the manager may be restarting
                if self._connected:
                    log.warning("heartbeat to %s failed: %s", self.config.url, exc)
                self._connected = False
            await asyncio.sleep(self.config.heartbeat_interval_s)

    async def _event_loop(self) -> None:
        delay = 0.5
        while True:
            await self._events_waiting.wait()
            try:
                async with self._send_lock:
                    await self._deliver_queued()
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retry until the manager takes them
                log.warning("could not deliver %d kernel event(s): %s; retrying", len(self._events), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def _deliver_queued(self) -> None:
        """Send every queued event (caller holds the send lock); on failure they stay queued, in order."""
        self._events_waiting.clear()
        batch, self._events = self._events, []
        if not batch:
            return
        try:
            await self._post_events(batch)
        except EventsRefused as exc:
            # The manager will never take these (a 4xx): keeping them would hold up every later event and
            # heartbeat. The heartbeats' kernel lists still let it reconcile.
            log.error("manager refused %d kernel event(s), dropping them: %s", len(batch), exc)
        except BaseException:
            self._events[:0] = batch
            self._events_waiting.set()
            raise

    async def _post_events(self, batch: list[dict[str, Any]]) -> None:
        payload = {"agent_id": self._agent_id, "events": batch}
        async with self.http.post(f"{self.config.url}/internal/v1/kernel-events", json=payload) as resp:
            if 400 <= resp.status < 500 and resp.status not in (401, 408, 429):
                raise EventsRefused(f"HTTP {resp.status}: {(await resp.text())[:300]}")
            if resp.status != 200:
                raise RuntimeError(f"manager answered {resp.status}: {(await resp.text())[:300]}")
            answer = await resp.json()
        # Kernels that came up although their session was destroyed meanwhile: remove them now (not at the
        # next heartbeat), without holding up the events behind them.
        if answer.get("destroy"):
            task = asyncio.get_running_loop().create_task(self._on_destroy(answer["destroy"]), name="destroy-unwanted")
            self._destroys.add(task)
            task.add_done_callback(self._destroys.discard)

    async def _flush_events(self) -> None:
        if not self._events:
            return
        count = len(self._events)
        try:
            async with self._send_lock:
                await self._deliver_queued()
        except Exception as exc:  # noqa: BLE001
            log.warning("%d kernel event(s) undelivered at shutdown (%s); the next heartbeat reconciles", count, exc)
