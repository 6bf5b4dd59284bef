"""Who is calling: HMAC-signed API requests (clients), the web UI's session cookie (browsers) and
the cluster secret (agents)."""
from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.cluster_secret import check_bearer
from corral.common.errors import AuthenticationFailed, PermissionDenied
from corral.common.signing import nonce_expiry, parse_signed_headers, verify_signature

from .db.models import Keypair, RequestNonce, User
from .web_sessions import COOKIE_NAME, CSRF_HEADER, WEB_ACCESS_KEY, WebSessionService

log = logging.getLogger(__name__)

REPLAY_MESSAGE = "request replayed: nonce already used"
DEFAULT_PURGE_INTERVAL_S = 60.0


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class AuthUser:
    user_id: str
    username: str
    role: str
    access_key: str
    # Set when the request came with the web UI's session cookie: that session's id.
    web_session_id: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class NonceLedger:
    """The nonces of accepted requests, in the database every manager shares, so a replay is refused by any
    manager and after restarts. The primary key makes "first use wins" one atomic INSERT."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        purge_interval_s: float = DEFAULT_PURGE_INTERVAL_S,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._purge_interval_s = purge_interval_s
        self._clock = clock
        self._next_purge = time.monotonic()  # the first request after a start cleans up what piled up meanwhile

    async def use(self, access_key: str, nonce: str, request_date: datetime) -> None:
        """Record the nonce; ``AuthenticationFailed`` when it was used already (a replay)."""
        row = {"access_key": access_key, "nonce": nonce, "expires_at": nonce_expiry(request_date)}
        try:
            async with self._sessionmaker.begin() as db:
                await db.execute(insert(RequestNonce).values(**row))
        except IntegrityError:
            raise AuthenticationFailed(REPLAY_MESSAGE) from None
        await self._purge_if_due()

    async def purge_expired(self) -> int:
        """Forget nonces whose requests would fail the date check anyway; how many went."""
        async with self._sessionmaker.begin() as db:
            result = await db.execute(delete(RequestNonce).where(RequestNonce.expires_at < self._clock()))
        return result.rowcount

    async def _purge_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        # Moved on before awaiting, so concurrent requests do not purge too.
        self._next_purge = now + self._purge_interval_s
        try:
            await self.purge_expired()
        except SQLAlchemyError:
            # The request itself is fine; the rows go at the next purge.
            log.warning("could not purge expired request nonces", exc_info=True)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_MESSAGE = "missing or wrong CSRF token"


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None]:
    parsed = urlsplit(f"//{netloc}")
    try:
        port = parsed.port
    except ValueError:
        return "", None
    return (parsed.hostname or ""), port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme)


def same_origin(request: web.Request) -> bool:
    """Whether the request's ``Origin`` names the host:port it was sent to (its ``Host``)."""
    origin = urlsplit(request.headers.get("Origin", ""))
    if not origin.scheme or not origin.netloc:
        return False
    theirs = _host_port(origin.netloc, origin.scheme)
    return bool(theirs[0]) and theirs == _host_port(request.host, origin.scheme)


def is_websocket_handshake(request: web.Request) -> bool:
    return request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket"


class RequestAuthenticator:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, nonces: NonceLedger | None = None,
        web_sessions: WebSessionService | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._nonces = nonces or NonceLedger(sessionmaker)
        self._web = web_sessions or WebSessionService(sessionmaker)

    async def authenticate(self, request: web.Request) -> AuthUser:
        """The caller of a signed request, or else of a request with a valid ``corral_session`` cookie."""
        if "Authorization" not in request.headers and request.cookies.get(COOKIE_NAME):
            return await self.authenticate_cookie(request)
        parts = parse_signed_headers(request.headers)
        async with self._sessionmaker() as db:
            row = (
                await db.execute(
                    select(Keypair, User).join(User, User.id == Keypair.user_id).where(Keypair.access_key == parts.access_key)
                )
            ).first()
        if row is None or not row.Keypair.is_active:
            raise AuthenticationFailed("unknown or inactive access key")
        body = await request.read()
        verify_signature(parts, row.Keypair.secret_key, request.method, request.raw_path, body)
        if not row.User.is_active:
            raise AuthenticationFailed(f"user {row.User.username} is disabled")
        # Only after the signature holds: nobody else can spend a caller's nonces or fill the table.
        await self._nonces.use(parts.access_key, parts.nonce, parts.date)
        return AuthUser(row.User.id, row.User.username, row.User.role, parts.access_key)

    async def authenticate_cookie(self, request: web.Request) -> AuthUser:
        """The user of the request's web session. A request that may change something must echo the
        session's CSRF token in ``X-CSRF-Token``; a websocket handshake must come from the same origin."""
        found = await self._web.lookup(request.cookies.get(COOKIE_NAME, ""))
        if found is None:
            raise AuthenticationFailed("not signed in: the web session is unknown or has expired")
        if not found.user.is_active:
            raise AuthenticationFailed(f"user {found.user.username} is disabled")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), found.session.csrf_token.encode()):
                raise PermissionDenied(CSRF_MESSAGE)
        elif is_websocket_handshake(request) and not same_origin(request):
            raise PermissionDenied("a websocket opened with the web session cookie must come from the same origin")
        user = found.user
        return AuthUser(user.id, user.username, user.role, WEB_ACCESS_KEY, web_session_id=found.session.id)


def check_cluster_secret(request: web.Request, secret: str) -> None:
    check_bearer(request.headers, secret)


def require_admin(user: AuthUser) -> None:
    if not user.is_admin:
        raise PermissionDenied("this needs an admin keypair")
