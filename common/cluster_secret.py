"""Service-to-service authentication: a shared secret as a bearer token."""
from __future__ import annotations

import hmac
from typing import Mapping

from .errors import AuthenticationFailed


def bearer_headers(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def check_bearer(headers: Mapping[str, str], secret: str) -> None:
    """Constant-time check of ``Authorization: Bearer <secret>``; 401 otherwise."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not secret or not hmac.compare_digest(token.encode(), secret.encode()):
        raise AuthenticationFailed("missing or wrong cluster secret")
