"""Unit tests for the vfolder JWT issued by the manager and checked by the proxy."""
from __future__ import annotations

import time

import jwt
import pytest

from corral.common.errors import AuthenticationFailed, PermissionDenied
from corral.common.vfolder_token import issue_vfolder_token, verify_vfolder_token

SECRET = "s" * 32


def test_round_trip() -> None:
    token = issue_vfolder_token(SECRET, vfolder_id="vf1", volume="local", user="alice", permission="ro", quota_bytes=10)
    claims = verify_vfolder_token(SECRET, token)
    assert (claims.vfolder_id, claims.volume, claims.user, claims.permission, claims.quota_bytes) == ("vf1", "local", "alice", "ro", 10)
    assert not claims.can_write
    assert claims.expires_at - claims.issued_at == 15 * 60
    with pytest.raises(PermissionDenied):
        claims.require_write()
    with pytest.raises(PermissionDenied):
        claims.require_vfolder("vf2")
    claims.require_vfolder("vf1")


def test_expired_token_is_401() -> None:
    token = issue_vfolder_token(SECRET, vfolder_id="vf1", volume="v", user="u", permission="rw", ttl_s=10, now=time.time() - 3600)
    with pytest.raises(AuthenticationFailed, match="expired"):
        verify_vfolder_token(SECRET, token)


def test_foreign_secret_is_401() -> None:
    token = issue_vfolder_token("x" * 32, vfolder_id="vf1", volume="v", user="u", permission="rw")
    with pytest.raises(AuthenticationFailed):
        verify_vfolder_token(SECRET, token)


@pytest.mark.parametrize(
    "changes",
    [{"aud": "someone-else"}, {"iss": "not-the-manager"}, {"perm": "admin"}, {"vfid": None}],
)
def test_bad_claims_are_401(changes: dict[str, object]) -> None:
    now = int(time.time())
    payload = {"iss": "corral-manager", "aud": "corral-storage", "sub": "u", "iat": now, "exp": now + 60,
               "vfid": "vf1", "vol": "v", "perm": "rw"}
    payload.update(changes)
    payload = {k: v for k, v in payload.items() if v is not None}
    with pytest.raises(AuthenticationFailed):
        verify_vfolder_token(SECRET, jwt.encode(payload, SECRET, algorithm="HS256"))


def test_none_algorithm_is_refused() -> None:
    now = int(time.time())
    payload = {"iss": "corral-manager", "aud": "corral-storage", "sub": "u", "iat": now, "exp": now + 60,
               "vfid": "vf1", "vol": "v", "perm": "rw"}
    with pytest.raises(AuthenticationFailed):
        verify_vfolder_token(SECRET, jwt.encode(payload, None, algorithm="none"))


def test_garbage_is_401() -> None:
    with pytest.raises(AuthenticationFailed):
        verify_vfolder_token(SECRET, "not.a.token")
