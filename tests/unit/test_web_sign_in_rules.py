"""The web sign-in's building blocks: the failed-login limiter, password rules and hashes, same-origin."""
from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from corral.common.errors import InvalidRequest
from corral.manager.auth import is_websocket_handshake, same_origin
from corral.manager.passwords import (
    check_password_rules,
    hash_password_sync,
    password_problem,
    verify_password_sync,
)
from corral.manager.web_sessions import LoginLimiter, RateLimited, token_id


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_allows_max_failures_per_key_in_a_sliding_window() -> None:
    clock = Clock()
    limiter = LoginLimiter(3, 300.0, clock=clock)
    for _ in range(2):
        limiter.failed("user:ann", "addr:1.2.3.4")
        clock.now += 10
    assert limiter.retry_after("user:ann", "addr:1.2.3.4") is None
    limiter.failed("user:ann", "addr:1.2.3.4")  # the third, at t=1020
    assert limiter.retry_after("user:ann") == pytest.approx(280.0)  # the first (t=1000) ages out at 1300
    assert limiter.retry_after("addr:1.2.3.4") == pytest.approx(280.0)
    assert limiter.retry_after("user:bob", "addr:5.6.7.8") is None  # other keys are free
    assert limiter.retry_after("user:bob", "addr:1.2.3.4") is not None  # any limited key limits
    clock.now = 1300.0
    assert limiter.retry_after("user:ann") is None  # sliding: one failure left the window
    limiter.failed("user:ann")
    assert limiter.retry_after("user:ann") == pytest.approx(10.0)  # the next oldest is t=1010


def test_forgetting_a_key_and_the_memory_bound() -> None:
    clock = Clock()
    limiter = LoginLimiter(1, 60.0, clock=clock, max_keys=3)
    limiter.failed("user:ann")
    limiter.forget("user:ann")
    assert limiter.retry_after("user:ann") is None
    for name in ("a", "b", "c", "d"):
        limiter.failed(f"user:{name}")
        clock.now += 1
    assert len(limiter._failures) == 3 and limiter.retry_after("user:a") is None  # the stalest went
    assert limiter.retry_after("user:d") is not None
    clock.now += 60
    limiter.failed("user:e")
    assert list(limiter._failures) == ["user:e"]  # expired keys are swept before any is dropped


def test_rate_limited_is_a_429_problem_with_retry_after() -> None:
    err = RateLimited("too many failed logins; try again in 7 s", 7)
    assert err.status == 429 and err.headers == {"Retry-After": "7"}
    assert err.to_problem()["type"].endswith("/rate-limited")


@pytest.mark.parametrize(("password", "username", "problem"), [
    ("short", "ann", "at least 8"),
    ("x" * 1025, "ann", "at most 1024"),
    ("annabelle", "annabelle", "not be the username"),
    ("AnnaBelle", "annabelle", "not be the username"),
    ("12345678", "ann", None),
    ("x" * 1024, "ann", None),
])
def test_password_rules(password: str, username: str, problem: str | None) -> None:
    found = password_problem(password, username)
    if problem is None:
        assert found is None
        check_password_rules(password, username)
    else:
        assert found is not None and problem in found
        with pytest.raises(InvalidRequest, match=problem):
            check_password_rules(password, username)


def test_hashes_are_argon2id_and_salted() -> None:
    first, second = hash_password_sync("a password"), hash_password_sync("a password")
    assert first.startswith("$argon2id$") and first != second
    assert verify_password_sync(first, "a password") and verify_password_sync(second, "a password")
    assert not verify_password_sync(first, "another one")
    assert not verify_password_sync(None, "a password")  # checked against a dummy hash, still False
    assert not verify_password_sync("not a hash", "a password")


def test_cookie_tokens_are_stored_hashed() -> None:
    assert token_id("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(("host", "origin", "same"), [
    ("ui.example:8080", "http://ui.example:8080", True),
    ("ui.example", "https://ui.example", True),
    ("ui.example:443", "https://ui.example", True),
    ("UI.example", "https://ui.example", True),
    ("ui.example:8080", "http://ui.example:8081", False),
    ("ui.example:8080", "http://evil.example:8080", False),
    ("ui.example", "null", False),
    ("ui.example", "", False),
])
def test_same_origin(host: str, origin: str, same: bool) -> None:
    headers = {"Host": host, "Upgrade": "websocket", **({"Origin": origin} if origin else {})}
    request = make_mocked_request("GET", "/api/v1/sessions/x/terminal", headers=headers)
    assert is_websocket_handshake(request)
    assert same_origin(request) is same
