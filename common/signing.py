"""HMAC-SHA256 request signing between clients and the manager (DESIGN §2).

A signed request carries::

    Authorization: Corral-HMAC-SHA256 Credential=<access key>, Signature=<hex>
    X-Corral-Date: 2026-11-25T10:00:00Z
    X-Corral-Nonce: <random hex>
    X-Corral-Content-SHA256: <hex sha256 of the body>

The signature covers method, path+query, date, nonce and body hash. The
server rejects clock skew above ``MAX_SKEW`` and nonces already used while
their request's date is inside that window (replays): the manager records
each nonce until ``nonce_expiry`` in the database all managers share.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Mapping

from .errors import AuthenticationFailed

SCHEME = "Corral-HMAC-SHA256"
DATE_HEADER = "X-Corral-Date"
NONCE_HEADER = "X-Corral-Nonce"
BODY_HASH_HEADER = "X-Corral-Content-SHA256"
MAX_SKEW = timedelta(minutes=15)
# Managers' clocks differ a little; a nonce outlives its window by this much so
# that one manager's purge cannot forget it while another still accepts its date.
NONCE_CLOCK_MARGIN = timedelta(minutes=5)
MAX_NONCE_LENGTH = 64
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def string_to_sign(method: str, path_qs: str, date: str, nonce: str, body_hash: str) -> str:
    return "\n".join([method.upper(), path_qs, date, nonce, body_hash])


def compute_signature(secret_key: str, method: str, path_qs: str, date: str, nonce: str, body_hash: str) -> str:
    message = string_to_sign(method, path_qs, date, nonce, body_hash).encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def sign_request(
    access_key: str, secret_key: str, method: str, path_qs: str, body: bytes = b"", now: datetime | None = None
) -> dict[str, str]:
    """Headers that authenticate one request."""
    date = (now or datetime.now(timezone.utc)).strftime(_DATE_FORMAT)
    nonce = secrets.token_hex(16)
    body_hash = body_sha256(body)
    signature = compute_signature(secret_key, method, path_qs, date, nonce, body_hash)
    return {
        "Authorization": f"{SCHEME} Credential={access_key}, Signature={signature}",
        DATE_HEADER: date,
        NONCE_HEADER: nonce,
        BODY_HASH_HEADER: body_hash,
    }


@dataclass(frozen=True)
class SignedParts:
    access_key: str
    signature: str
    date: datetime
    date_text: str
    nonce: str
    body_hash: str


def parse_signed_headers(headers: Mapping[str, str]) -> SignedParts:
    """Pull the signing fields out of request headers; 401 when any is missing."""
    auth = headers.get("Authorization", "")
    if not auth:
        raise AuthenticationFailed("missing Authorization header")
    scheme, _, params = auth.partition(" ")
    if scheme != SCHEME:
        raise AuthenticationFailed(f"unsupported authorization scheme {scheme!r}; expected {SCHEME}")
    fields: dict[str, str] = {}
    for part in params.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key] = value
    if "Credential" not in fields or "Signature" not in fields:
        raise AuthenticationFailed("Authorization header lacks Credential or Signature")
    date_text = headers.get(DATE_HEADER, "")
    nonce = headers.get(NONCE_HEADER, "")
    body_hash = headers.get(BODY_HASH_HEADER, "")
    if not date_text or not nonce or not body_hash:
        raise AuthenticationFailed(f"missing {DATE_HEADER}, {NONCE_HEADER} or {BODY_HASH_HEADER} header")
    if len(nonce) > MAX_NONCE_LENGTH:
        raise AuthenticationFailed(f"{NONCE_HEADER} is longer than {MAX_NONCE_LENGTH} characters")
    try:
        date = datetime.strptime(date_text, _DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise AuthenticationFailed(f"malformed {DATE_HEADER}: {date_text!r}") from None
    return SignedParts(fields["Credential"], fields["Signature"], date, date_text, nonce, body_hash)


def verify_signature(
    parts: SignedParts, secret_key: str, method: str, path_qs: str, body: bytes, now: datetime | None = None
) -> None:
    now = now or datetime.now(timezone.utc)
    if abs(now - parts.date) > MAX_SKEW:
        raise AuthenticationFailed("request date is more than 15 minutes off the server clock")
    if not hmac.compare_digest(parts.body_hash, body_sha256(body)):
        raise AuthenticationFailed("body hash does not match the body")
    expected = compute_signature(secret_key, method, path_qs, parts.date_text, parts.nonce, parts.body_hash)
    if not hmac.compare_digest(expected, parts.signature):
        raise AuthenticationFailed("signature does not match")


def nonce_expiry(request_date: datetime) -> datetime:
    """Until when a request's nonce must be remembered: later, its date fails the skew check anyway."""
    return request_date + MAX_SKEW + NONCE_CLOCK_MARGIN
