"""Short-lived JWTs that let a client talk to the storage proxy about one vfolder.

The manager issues a token per (vfolder, permission) with ``issue_vfolder_token``;
the storage proxy checks it with ``verify_vfolder_token``. Both share
``jwt_secret`` (HS256). The token says which vfolder on which volume, who asked,
``ro`` or ``rw``, and optionally a byte quota the proxy enforces on uploads.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Literal

import jwt

from .errors import AuthenticationFailed, PermissionDenied

VFOLDER_TOKEN_ISSUER = "corral-manager"
VFOLDER_TOKEN_AUDIENCE = "corral-storage"
VFOLDER_TOKEN_ALGORITHM = "HS256"
DEFAULT_VFOLDER_TOKEN_TTL_S = 15 * 60
# Clocks of the manager and the proxy may disagree a little.
CLOCK_LEEWAY_S = 30

Permission = Literal["ro", "rw"]


@dataclass(frozen=True)
class VfolderClaims:
    vfolder_id: str
    volume: str
    user: str
    permission: Permission
    issued_at: int
    expires_at: int
    token_id: str
    quota_bytes: int | None = None

    @property
    def can_write(self) -> bool:
        return self.permission == "rw"

    def require_vfolder(self, vfolder_id: str) -> None:
        if vfolder_id != self.vfolder_id:
            raise PermissionDenied("this token is for another vfolder")

    def require_write(self) -> None:
        if not self.can_write:
            raise PermissionDenied("this token is read-only")


def issue_vfolder_token(
    secret: str,
    *,
    vfolder_id: str,
    volume: str,
    user: str,
    permission: Permission,
    ttl_s: int = DEFAULT_VFOLDER_TOKEN_TTL_S,
    quota_bytes: int | None = None,
    now: float | None = None,
) -> str:
    if permission not in ("ro", "rw"):
        raise ValueError(f"permission must be 'ro' or 'rw', not {permission!r}")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    issued_at = int(time.time() if now is None else now)
    payload: dict[str, object] = {
        "iss": VFOLDER_TOKEN_ISSUER,
        "aud": VFOLDER_TOKEN_AUDIENCE,
        "sub": user,
        "iat": issued_at,
        "exp": issued_at + int(ttl_s),
        "jti": uuid.uuid4().hex,
        "vfid": vfolder_id,
        "vol": volume,
        "perm": permission,
    }
    if quota_bytes is not None:
        payload["quota"] = int(quota_bytes)
    return jwt.encode(payload, secret, algorithm=VFOLDER_TOKEN_ALGORITHM)


def verify_vfolder_token(secret: str, token: str) -> VfolderClaims:
    """Check signature, expiry, issuer and audience; raise AuthenticationFailed (401)."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[VFOLDER_TOKEN_ALGORITHM],
            audience=VFOLDER_TOKEN_AUDIENCE,
            issuer=VFOLDER_TOKEN_ISSUER,
            leeway=CLOCK_LEEWAY_S,
            options={"require": ["exp", "iat", "aud", "iss", "sub", "vfid", "vol", "perm"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationFailed("vfolder token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthenticationFailed(f"invalid vfolder token: {exc}") from None
    permission = payload.get("perm")
    if permission not in ("ro", "rw"):
        raise AuthenticationFailed("invalid vfolder token: bad permission claim")
    quota = payload.get("quota")
    if quota is not None and (not isinstance(quota, int) or quota < 0):
        raise AuthenticationFailed("invalid vfolder token: bad quota claim")
    return VfolderClaims(
        vfolder_id=str(payload["vfid"]),
        volume=str(payload["vol"]),
        user=str(payload["sub"]),
        permission=permission,
        issued_at=int(payload["iat"]),
        expires_at=int(payload["exp"]),
        token_id=str(payload.get("jti", "")),
        quota_bytes=quota,
    )
