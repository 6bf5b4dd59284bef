from datetime import datetime, timedelta, timezone

import pytest

from corral.common.errors import AuthenticationFailed
from corral.common.signing import NonceCache, parse_signed_headers, sign_request, verify_signature

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)


def _verify(headers: dict, secret: str = "s3cret", method: str = "POST", path: str = "/api/v1/x?a=1",
            body: bytes = b"{}", now: datetime = NOW) -> None:
    verify_signature(parse_signed_headers(headers), secret, method, path, body, now=now)


def test_roundtrip() -> None:
    _verify(sign_request("AK1", "s3cret", "POST", "/api/v1/x?a=1", b"{}", now=NOW))


@pytest.mark.parametrize("change", [
    {"secret": "other"}, {"method": "GET"}, {"path": "/api/v1/x?a=2"}, {"body": b"{ }"},
    {"now": NOW + timedelta(minutes=16)}, {"now": NOW - timedelta(minutes=16)},
])
def test_any_change_breaks_the_signature(change: dict) -> None:
    headers = sign_request("AK1", "s3cret", "POST", "/api/v1/x?a=1", b"{}", now=NOW)
    with pytest.raises(AuthenticationFailed):
        _verify(headers, **change)


def test_skew_within_15_minutes_is_fine() -> None:
    _verify(sign_request("AK1", "s3cret", "POST", "/api/v1/x?a=1", b"{}", now=NOW), now=NOW + timedelta(minutes=14))


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Basic abc"}, {"Authorization": "Corral-HMAC-SHA256 Credential=AK"},
])
def test_missing_parts_are_401(headers: dict) -> None:
    with pytest.raises(AuthenticationFailed):
        parse_signed_headers(headers)


def test_replayed_nonce_is_refused() -> None:
    cache = NonceCache()
    cache.check_and_remember("AK1", "n1", NOW)
    cache.check_and_remember("AK2", "n1", NOW)
    with pytest.raises(AuthenticationFailed, match="replay"):
        cache.check_and_remember("AK1", "n1", NOW)
