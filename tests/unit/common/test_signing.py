from datetime import datetime, timedelta, timezone

import pytest

from corral.common.errors import AuthenticationFailed
from corral.common.signing import (
    MAX_NONCE_LENGTH,
    MAX_SKEW,
    NONCE_HEADER,
    nonce_expiry,
    parse_signed_headers,
    sign_request,
    verify_signature,
)

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


def test_an_overlong_nonce_is_401() -> None:
    headers = sign_request("AK1", "s3cret", "POST", "/api/v1/x?a=1", b"{}", now=NOW)
    headers[NONCE_HEADER] = "n" * (MAX_NONCE_LENGTH + 1)
    with pytest.raises(AuthenticationFailed, match="longer than"):
        parse_signed_headers(headers)


def test_a_nonce_is_kept_until_its_request_would_fail_the_date_check() -> None:
    headers = sign_request("AK1", "s3cret", "POST", "/api/v1/x?a=1", b"{}", now=NOW)
    expiry = nonce_expiry(parse_signed_headers(headers).date)
    last_accepted = NOW + MAX_SKEW
    _verify(headers, now=last_accepted)
    assert expiry > last_accepted  # with a margin for other managers' clocks
    with pytest.raises(AuthenticationFailed, match="15 minutes"):
        _verify(headers, now=expiry)
