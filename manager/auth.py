"""Who is calling: HMAC-signed API requests (clients) and the cluster secret (agents)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from aiohttp import web
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.cluster_secret import check_bearer
from corral.common.errors import AuthenticationFailed, PermissionDenied
from corral.common.signing import nonce_expiry, parse_signed_headers, verify_signature

from .db.models import Keypair, RequestNonce, User

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


class RequestAuthenticator:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, nonces: NonceLedger | None = None) -> None:
        self._sessionmaker = sessionmaker
        self._nonces = nonces or NonceLedger(sessionmaker)

    async def authenticate(self, request: web.Request) -> AuthUser:
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
        # Only after the signature holds: nobody else can spend a caller's nonces or fill the table.
        await self._nonces.use(parts.access_key, parts.nonce, parts.date)
        return AuthUser(row.User.id, row.User.username, row.User.role, parts.access_key)


def check_cluster_secret(request: web.Request, secret: str) -> None:
    check_bearer(request.headers, secret)


def require_admin(user: AuthUser) -> None:
    if not user.is_admin:
        raise PermissionDenied("this needs an admin keypair")
