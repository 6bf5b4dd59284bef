"""Who may call what: the manager by shared secret, clients by vfolder JWT."""
from __future__ import annotations

import hmac

from aiohttp import web

from corral.common.errors import AuthenticationFailed
from corral.common.vfolder_token import VfolderClaims, verify_vfolder_token


def bearer_token(request: web.Request, *, allow_query: bool = False) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    # Browsers following a plain link cannot set headers; let GETs carry ?token=.
    if allow_query and request.method in ("GET", "HEAD") and request.query.get("token"):
        return request.query["token"]
    raise AuthenticationFailed("missing 'Authorization: Bearer …' header")


def require_manager(request: web.Request, manager_secret: str) -> None:
    presented = bearer_token(request)
    if not hmac.compare_digest(presented.encode(), manager_secret.encode()):
        raise AuthenticationFailed("wrong manager secret")


def require_vfolder_claims(request: web.Request, jwt_secret: str, vfid: str, *, write: bool) -> VfolderClaims:
    """Verify the token (401) and that it covers ``vfid`` with enough permission (403)."""
    claims = verify_vfolder_token(jwt_secret, bearer_token(request, allow_query=not write))
    claims.require_vfolder(vfid)
    if write:
        claims.require_write()
    return claims
