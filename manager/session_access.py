"""Who opened what in a session, and when a session was last used.

Opening a terminal, a tunnel or a browser app is recorded (``session_access``: the audit log's
source); every use — those, and each proxied app request — moves ``sessions.last_activity_at``,
written at most once per ``TOUCH_EVERY_S`` per session by this manager so a busy app costs the
database almost nothing. Failures to record are logged, never fatal to the connection."""
from __future__ import annotations

import logging
import time

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .clock import utcnow
from .db.models import Session, SessionAccess

log = logging.getLogger(__name__)

TOUCH_EVERY_S = 30.0
TERMINAL, TCP, HTTP = "terminal", "tcp", "http"


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
