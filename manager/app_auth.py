"""Browser access to a session's web apps: a one-time link token, exchanged for a cookie.

The SDK/CLI (authenticated as usual) asks for a token for one service of one session; the browser
opens the proxy URL with ``?corral_token=…``; the manager checks it (signature, expiry, session,
service, and that it was never used — any manager refuses a second use), sets an HttpOnly,
SameSite=Lax cookie scoped to that session's services path, and redirects to the same URL
without the token. The cookie then authenticates the app's own requests and websockets.

Both are JWTs signed with a key derived from the cluster secret, so every manager accepts them.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from corral.common.errors import AuthenticationFailed

from .auth import NonceLedger
from .clock import utcnow

TOKEN_QUERY = "corral_token"
COOKIE_NAME = "corral_app"
TOKEN_TTL = timedelta(seconds=120)
COOKIE_TTL = timedelta(hours=12)
_TOKEN = "corral-app-token"
_COOKIE = "corral-app-cookie"
_NONCE_KEY = "app-token"  # the ledger's access_key column for app tokens


@dataclass(frozen=True)
class AppGrant:
    user_id: str
    session_id: str
    service: str


def cookie_path(session_id: str) -> str:
    return f"/api/v1/sessions/{session_id}/services/"


class AppAuth:
    def __init__(self, cluster_secret: str, nonces: NonceLedger) -> None:
        self._key = hmac.new(cluster_secret.encode(), b"corral app access v1", hashlib.sha256).digest()
        self._nonces = nonces

    def issue_token(self, grant: AppGrant) -> tuple[str, datetime]:
        expires = utcnow() + TOKEN_TTL
        claims = {"typ": _TOKEN, "sub": grant.user_id, "sid": grant.session_id, "svc": grant.service,
                  "exp": expires, "jti": secrets.token_hex(16)}
        return jwt.encode(claims, self._key, algorithm="HS256"), expires

    async def redeem(self, token: str, session_id: str, service: str) -> AppGrant:
        """The token's grant if it is valid for this session and service and was never used."""
        claims = self._decode(token, _TOKEN, "link token")
        if claims.get("sid") != session_id or claims.get("svc") != service:
            raise AuthenticationFailed("this link is for another session or service")
        jti = str(claims.get("jti") or "")
        if not jti:
            raise AuthenticationFailed("the link token is malformed")
        try:
            await self._nonces.use(_NONCE_KEY, jti, utcnow())
        except AuthenticationFailed:
            raise AuthenticationFailed("this link was used already: ask for a new one (corral app --open)") from None
        return AppGrant(str(claims["sub"]), session_id, service)

    def cookie(self, grant: AppGrant) -> str:
        claims = {"typ": _COOKIE, "sub": grant.user_id, "sid": grant.session_id, "exp": utcnow() + COOKIE_TTL}
        return jwt.encode(claims, self._key, algorithm="HS256")

    def check_cookie(self, value: str, session_id: str) -> str:
        """The user id the cookie was given to, if it is valid for this session."""
        claims = self._decode(value, _COOKIE, "app cookie")
        if claims.get("sid") != session_id:
            raise AuthenticationFailed("the app cookie is for another session")
        return str(claims["sub"])

    def _decode(self, value: str, kind: str, what: str) -> dict[str, object]:
        try:
            claims = jwt.decode(value, self._key, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed(f"the {what} has expired") from None
        except jwt.PyJWTError:
            raise AuthenticationFailed(f"the {what} is not valid") from None
        if claims.get("typ") != kind:
            raise AuthenticationFailed(f"the {what} is not valid")
        return claims
