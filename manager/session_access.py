"""Who opened what in a session, and when a session was last used.

Opening a terminal, a tunnel or a browser app is recorded (``session_access``: the audit log's
source); every use moves ``sessions.last_activity_at`` (what the idle timeout of resource policies
counts from, `lifecycle.limits`): opening those, each proxied app request, traffic through an open
terminal, tunnel (SSH included) or app websocket, and code execution (``execute``, ``interrupt``) for as
long as it runs. It is written at most once per ``TOUCH_EVERY_S`` per session and connection by this
manager, so a busy app costs the database almost nothing. Failures to record are logged, never fatal
to the connection."""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .clock import utcnow
from .db.models import Session, SessionAccess

log = logging.getLogger(__name__)

TOUCH_EVERY_S = 30.0
TERMINAL, TCP, HTTP = "terminal", "tcp", "http"


class Traffic:
    """Whether a connection carried anything since it was last asked (marking it is just a flag: it
    runs for every message)."""

    def __init__(self) -> None:
        self._seen = False

    def mark(self) -> None:
        self._seen = True

    def take(self) -> bool:
        seen, self._seen = self._seen, False
        return seen


class AccessRecorder:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._touched: dict[str, float] = {}

    async def opened(self, session_id: str, user_id: str, kind: str, service: str = "") -> None:
        now = utcnow()
        try:
            async with self._sessionmaker.begin() as db:
                db.add(SessionAccess(session_id=session_id, user_id=user_id, kind=kind, service=service, at=now))
                await db.execute(update(Session).where(Session.id == session_id).values(last_activity_at=now))
        except SQLAlchemyError as exc:
            log.warning("could not record %s access to session %s: %s", kind, session_id, exc)
            return
        self._touched[session_id] = time.monotonic()
        log.info("user %s opened %s%s in session %s", user_id, kind, f" {service}" if service else "", session_id)

    async def touch(self, session_id: str, *, force: bool = False) -> None:
        """Move ``last_activity_at`` (at most once per ``TOUCH_EVERY_S`` unless ``force``)."""
        last = self._touched.get(session_id)
        if not force and last is not None and time.monotonic() - last < TOUCH_EVERY_S:
            return
        self._touched[session_id] = time.monotonic()
        if len(self._touched) > 100_000:  # sessions long gone: start over rather than grow
            self._touched = {session_id: self._touched[session_id]}
        try:
            async with self._sessionmaker.begin() as db:
                await db.execute(update(Session).where(Session.id == session_id).values(last_activity_at=utcnow()))
        except SQLAlchemyError as exc:
            log.warning("could not record activity of session %s: %s", session_id, exc)

    @asynccontextmanager
    async def in_use(self, session_id: str, *, busy: bool = False,
                     every_s: float = TOUCH_EVERY_S) -> AsyncIterator[Traffic]:
        """While the block runs, the session's activity is written every ``every_s`` and once at the end:
        always with ``busy`` (code is running), else only when the yielded `Traffic` was marked since."""
        traffic = Traffic()

        async def beat() -> None:
            while True:
                await asyncio.sleep(every_s)
                if busy or traffic.take():
                    await self.touch(session_id, force=True)

        task = asyncio.get_running_loop().create_task(beat(), name=f"activity-{session_id}")
        try:
            yield traffic
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if busy or traffic.take():
                await self.touch(session_id, force=True)
