"""Who is calling: HMAC-signed API requests (clients) and the cluster secret (agents)."""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.cluster_secret import check_bearer
from corral.common.errors import AuthenticationFailed, PermissionDenied
from corral.common.signing import NonceCache, parse_signed_headers, verify_signature

from .db.models import Keypair, User


@dataclass(frozen=True)
class AuthUser:
    user_id: str
    username: str
    role: str
    access_key: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class RequestAuthenticator:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._nonces = NonceCache()

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
        self._nonces.check_and_remember(parts.access_key, parts.nonce)
        return AuthUser(row.User.id, row.User.username, row.User.role, parts.access_key)


def check_cluster_secret(request: web.Request, secret: str) -> None:
    check_bearer(request.headers, secret)


def require_admin(user: AuthUser) -> None:
    if not user.is_admin:
        raise PermissionDenied("this needs an admin keypair")
