"""The web UI's sign-in: username + password for a ``corral_session`` cookie, kept in ``web_sessions``.

The cookie holds a random 32-byte token; the database keeps only its sha256, so a copy of the
table signs nobody in. Each session has a CSRF token the browser must echo in ``X-CSRF-Token`` on
every request that changes something (``manager.auth`` checks it). A session ends after
``[web] session_idle_s`` without a request, ``session_max_s`` after sign-in, at logout, when its
user is disabled, and (all but the one making the change) when its user's password changes.

Failed logins are limited per username and per client address (``LoginLimiter``), in memory:
the limit holds per manager, and a restart forgets it.
"""
from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.errors import AuthenticationFailed, RateLimited

from .clock import utcnow
from .config import WebConfig
from .db.models import User, WebSession
from .passwords import verify_password

log = logging.getLogger(__name__)

COOKIE_NAME = "corral_session"
CSRF_HEADER = "X-CSRF-Token"
# The AuthUser.access_key of a request authenticated by the cookie (no keypair involved).
WEB_ACCESS_KEY = ""
BAD_LOGIN = "wrong username or password"
LAST_SEEN_EVERY = timedelta(minutes=1)
PURGE_EVERY_S = 600.0


def token_id(token: str) -> str:
    """The ``web_sessions.id`` of a cookie token."""
    return hashlib.sha256(token.encode()).hexdigest()


class LoginLimiter:
    """At most ``max_failures`` failed logins per key (a username, a client address) in any sliding
    ``window_s``; in memory, bounded to ``max_keys`` keys (the stalest go first)."""

    def __init__(
        self, max_failures: int = 10, window_s: float = 300.0, *, clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, *keys: str) -> float | None:
        """Seconds until every key may try again; None when all may now."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if times is not None and len(times) >= self.max_failures:
                wait = max(wait, times[-self.max_failures] + self.window_s - now)
        return wait if wait > 0 else None

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            times = self._recent(key, now)
            if times is None:
                if len(self._failures) >= self._max_keys:
                    self._make_room(now)
                times = self._failures[key] = deque()
            times.append(now)
            while len(times) > self.max_failures:  # only the latest max_failures matter
                times.popleft()

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _make_room(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        while len(self._failures) >= self._max_keys:
            del self._failures[next(iter(self._failures))]  # the key that failed first


@dataclass(frozen=True)
class SignedIn:
    """A valid web session and its user."""

    token: str  # the cookie's value ("" when looked up from a cookie: the caller has it)
    session: WebSession
    user: User


class WebSessionService:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], config: WebConfig | None = None, *,
        limiter: LoginLimiter | None = None, clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.config = config or WebConfig()
        self.limiter = limiter or LoginLimiter(self.config.login_max_failures, self.config.login_window_s)
        self._clock = clock
        self._idle = timedelta(seconds=self.config.session_idle_s)
        self._max = timedelta(seconds=self.config.session_max_s)
        self._next_purge = time.monotonic()

    async def login(self, username: str, password: str, client_address: str) -> SignedIn:
        """A new web session; ``AuthenticationFailed`` (the same words for an unknown user and a wrong
        password, and as slow), or ``RateLimited`` after too many failures for the name or address."""
        name = username.strip().lower()
        keys = (f"user:{name}", f"addr:{client_address}")
        wait = self.limiter.retry_after(*keys)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(f"too many failed logins; try again in {seconds} s", seconds)
        async with self._sessionmaker() as db:
            user = await db.scalar(select(User).where(User.username == name))
        if not await verify_password(user.password_hash if user is not None else None, password):
            self.limiter.failed(*keys)
            raise AuthenticationFailed(BAD_LOGIN)
        assert user is not None
        if not user.is_active:
            raise AuthenticationFailed(f"user {user.username} is disabled; ask an admin")
        self.limiter.forget(keys[0])
        token = secrets.token_urlsafe(32)
        now = self._clock()
        row = WebSession(
            id=token_id(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32), created_at=now,
            expires_at=now + self._max, last_seen_at=now,
        )
        async with self._sessionmaker.begin() as db:
            db.add(row)
        await self._purge_if_due()
        return SignedIn(token, row, user)

    async def lookup(self, token: str) -> SignedIn | None:
        """The session of a cookie token if it is valid (and noted as seen, at most once a minute)."""
        if not token:
            return None
        now = self._clock()
        async with self._sessionmaker() as db:
            found = (
                await db.execute(select(WebSession, User).join(User, User.id == WebSession.user_id)
                                 .where(WebSession.id == token_id(token)))
            ).first()
            if found is None:
                return None
            session, user = found.WebSession, found.User
            if now >= session.expires_at or now >= session.last_seen_at + self._idle:
                await db.execute(delete(WebSession).where(WebSession.id == session.id))
                await db.commit()
                return None
            if now - session.last_seen_at >= LAST_SEEN_EVERY:
                await db.execute(update(WebSession).where(WebSession.id == session.id).values(last_seen_at=now))
                await db.commit()
        return SignedIn("", session, user)

    async def logout(self, session_id: str) -> None:
        async with self._sessionmaker.begin() as db:
            await db.execute(delete(WebSession).where(WebSession.id == session_id))

    async def end_user_sessions(self, user_id: str, *, keep: str = "") -> int:
        """End the user's web sessions (but ``keep``, a session id); how many ended."""
        async with self._sessionmaker.begin() as db:
            result = await db.execute(
                delete(WebSession).where(WebSession.user_id == user_id, WebSession.id != keep)
            )
        return result.rowcount

    async def purge_expired(self) -> int:
        now = self._clock()
        async with self._sessionmaker.begin() as db:
            result = await db.execute(delete(WebSession).where(
                or_(WebSession.expires_at <= now, WebSession.last_seen_at <= now - self._idle)
            ))
        return result.rowcount

    async def _purge_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_EVERY_S
        try:
            await self.purge_expired()
        except SQLAlchemyError:
            log.warning("could not purge expired web sessions", exc_info=True)
