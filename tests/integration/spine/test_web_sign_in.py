"""The web UI's sign-in against a live manager (SQLite and PostgreSQL): login and its cookie, the
cookie as an alternative to signing (with CSRF and same-origin websockets), logout, expiry, rate
limiting, disabled users and password changes. No agent or Docker needed."""
from __future__ import annotations

import asyncio
import json
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
from sqlalchemy import func, select

from corral.common.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from corral.common.signing import sign_request
from corral.manager.db.models import WebSession

from .cluster import LiveCluster

API = "/api/v1"
PASSWORD = "correct horse battery"


@pytest.fixture
def live(manager_only: LiveCluster) -> LiveCluster:
    return manager_only


class Browser:
    """What a browser would send: the cookie it was given, the CSRF token the UI keeps, an Origin."""

    def __init__(self, cluster: LiveCluster, http: aiohttp.ClientSession) -> None:
        self.base = cluster.manager.url
        self.http = http
        self.cookie = ""
        self.csrf = ""
        self.set_cookie: SimpleCookie = SimpleCookie()
        self.raw_set_cookie = ""

    async def request(self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None,
                      cookie: bool = True, csrf: bool = True) -> tuple[int, Any, aiohttp.ClientResponse]:
        sent = dict(headers or {})
        if cookie and self.cookie:
            sent["Cookie"] = f"corral_session={self.cookie}"
        if csrf and self.csrf:
            sent.setdefault("X-CSRF-Token", self.csrf)
        async with self.http.request(method, self.base + path, json=json, headers=sent) as response:
            text = await response.text()
            body = await response.json(content_type=None) if text else None
            return response.status, body, response

    async def login(self, username: str, password: str) -> tuple[int, Any, aiohttp.ClientResponse]:
        status, body, response = await self.request(
            "POST", f"{API}/auth/login", json={"username": username, "password": password}, cookie=False, csrf=False
        )
        if status == 200:
            self.raw_set_cookie = response.headers["Set-Cookie"]
            self.set_cookie = SimpleCookie(self.raw_set_cookie)
            self.cookie = self.set_cookie["corral_session"].value
            self.csrf = body["csrf_token"]
        return status, body, response


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # A jar that keeps nothing: each request carries exactly the cookie the test gives it.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


async def _user(live: LiveCluster, name: str, password: str | None = PASSWORD, role: str = "user") -> dict[str, Any]:
    return await live.client().create_user(name, role, password)


async def test_login_sets_a_strict_http_only_cookie_that_authenticates(live: LiveCluster,
                                                                       http: aiohttp.ClientSession) -> None:
    made = await _user(live, "ann")
    browser = Browser(live, http)
    status, body, _ = await browser.login("ann", PASSWORD)
    assert status == 200, body
    assert body["user"] == {"user_id": made["id"], "username": "ann", "access_key": "", "role": "user"}
    assert len(body["csrf_token"]) >= 32
    morsel = browser.set_cookie["corral_session"]
    assert len(browser.cookie) >= 43  # 32 random bytes, base64url
    assert morsel["httponly"] and morsel["path"] == "/" and morsel["samesite"] == "Strict"
    assert not morsel["secure"]  # plain http here; https requests get Secure
    assert "HttpOnly" in browser.raw_set_cookie and "SameSite=Strict" in browser.raw_set_cookie

    # The database keeps only the token's hash.
    async with live.manager.sessionmaker() as db:
        ids = list(await db.scalars(select(WebSession.id)))
    assert len(ids) == 1 and ids[0] != browser.cookie and len(ids[0]) == 64

    status, who, _ = await browser.request("GET", f"{API}/whoami")
    assert status == 200 and who["username"] == "ann" and who["user_id"] == made["id"]
    status, session, _ = await browser.request("GET", f"{API}/auth/session")
    assert status == 200 and session == body
    # Same authorization as the user's keypair: not an admin.
    status, problem, _ = await browser.request("GET", f"{API}/users")
    assert status == 403 and problem["type"].endswith("permission-denied")

    # No cookie, or a made-up one: 401 problems.
    status, problem, response = await browser.request("GET", f"{API}/auth/session", cookie=False)
    assert status == 401 and response.content_type == "application/problem+json"
    status, _, _ = await browser.request("GET", f"{API}/whoami", headers={"Cookie": "corral_session=forged"},
                                         cookie=False)
    assert status == 401


async def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(live: LiveCluster,
                                                                          http: aiohttp.ClientSession) -> None:
    await _user(live, "ann")
    await _user(live, "nopass", password=None)
    browser = Browser(live, http)
    answers = []
    for username, password in (("ann", "wrong password"), ("nobody", PASSWORD), ("nopass", PASSWORD)):
        status, problem, response = await browser.login(username, password)
        assert status == 401 and response.content_type == "application/problem+json"
        assert "Set-Cookie" not in response.headers
        answers.append((problem["type"], problem["title"], problem["detail"]))
    assert len(set(answers)) == 1 and answers[0][2] == "wrong username or password"
    status, problem, _ = await browser.login("ann", "")
    assert status == 400


async def test_changing_requests_need_the_csrf_token(live: LiveCluster, http: aiohttp.ClientSession) -> None:
    from corral.common.ssh_keys import generate_ed25519

    await _user(live, "ann")
    browser = Browser(live, http)
    await browser.login("ann", PASSWORD)
    key = {"public_key": generate_ed25519("web").public_line}
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        status, problem, _ = await browser.request("POST", f"{API}/ssh-keys", json=key, headers=headers, csrf=False)
        assert status == 403 and problem["detail"] == "missing or wrong CSRF token", problem
    status, added, _ = await browser.request("POST", f"{API}/ssh-keys", json=key)
    assert status == 201, added
    status, listed, _ = await browser.request("GET", f"{API}/ssh-keys", csrf=False)
    assert status == 200 and [k["id"] for k in listed["items"]] == [added["id"]]
    status, _, _ = await browser.request("DELETE", f"{API}/ssh-keys/{added['id']}", csrf=False)
    assert status == 403
    status, _, _ = await browser.request("DELETE", f"{API}/ssh-keys/{added['id']}")
    assert status == 200
    # A signed request needs no CSRF token, cookie or not.
    path = f"{API}/whoami"
    signed = sign_request(live.admin_access_key, live.admin_secret_key, "GET", path, b"")
    status, who, _ = await browser.request("GET", path, headers=signed, csrf=False)
    assert status == 200 and who["username"] == "admin"  # the signature wins over the cookie


async def test_a_websocket_with_the_cookie_must_come_from_the_same_origin(live: LiveCluster,
                                                                          http: aiohttp.ClientSession) -> None:
    await _user(live, "ann")
    browser = Browser(live, http)
    await browser.login("ann", PASSWORD)
    host = live.manager.url.removeprefix("http://")
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    terminal = f"{API}/sessions/no-such-session/terminal"
    for origin in ({"Origin": "https://evil.example"}, {"Origin": f"http://{host.split(':')[0]}:1"}, {}):
        status, problem, _ = await browser.request("GET", terminal, headers={**upgrade, **origin})
        assert status == 403 and "same origin" in problem["detail"], (origin, problem)
    # From the UI's own origin the handshake gets as far as the session lookup.
    status, problem, _ = await browser.request("GET", terminal, headers={**upgrade, "Origin": f"http://{host}"})
    assert status == 404, problem
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(live.manager.url + terminal, origin="https://evil.example",
                              headers={"Cookie": f"corral_session={browser.cookie}"})
    assert refused.value.status == 403


async def test_logout_ends_the_session_and_clears_the_cookie(live: LiveCluster, http: aiohttp.ClientSession) -> None:
    await _user(live, "ann")
    browser = Browser(live, http)
    await browser.login("ann", PASSWORD)
    other = Browser(live, http)
    await other.login("ann", PASSWORD)
    status, problem, _ = await browser.request("POST", f"{API}/auth/logout", csrf=False)
    assert status == 403 and problem["detail"] == "missing or wrong CSRF token"
    status, body, response = await browser.request("POST", f"{API}/auth/logout")
    assert status == 204 and body is None
    cleared = SimpleCookie(response.headers["Set-Cookie"])["corral_session"]
    assert cleared.value == "" and cleared["max-age"] == "0"
    for path in (f"{API}/auth/session", f"{API}/whoami"):
        status, _, _ = await browser.request("GET", path)
        assert status == 401
    status, _, _ = await other.request("GET", f"{API}/whoami")  # only that browser was signed out
    assert status == 200
    status, _, _ = await browser.request("POST", f"{API}/auth/logout")  # again: nothing to end
    assert status == 204


async def test_sessions_end_when_idle(db_url: str, http: aiohttp.ClientSession) -> None:
    cluster = LiveCluster(db_url=db_url)
    await cluster.start_manager(web={"session_idle_s": 1.0})
    try:
        await _user(cluster, "ann")
        browser = Browser(cluster, http)
        await browser.login("ann", PASSWORD)
        assert (await browser.request("GET", f"{API}/whoami"))[0] == 200
        await asyncio.sleep(1.3)
        assert (await browser.request("GET", f"{API}/whoami"))[0] == 401
        async with cluster.manager.sessionmaker() as db:
            assert await db.scalar(select(func.count()).select_from(WebSession)) == 0  # and it was deleted
    finally:
        await cluster.stop()


async def test_failed_logins_are_rate_limited(db_url: str, http: aiohttp.ClientSession) -> None:
    cluster = LiveCluster(db_url=db_url)
    await cluster.start_manager(web={"login_max_failures": 3, "login_window_s": 60})
    try:
        await _user(cluster, "ann")
        await _user(cluster, "bob")
        browser = Browser(cluster, http)
        for _ in range(3):
            assert (await browser.login("ann", "not the password"))[0] == 401
        # Now even the right password waits, and so does anyone else from this address.
        for username in ("ann", "bob"):
            status, problem, response = await browser.login(username, PASSWORD)
            assert status == 429, problem
            assert response.content_type == "application/problem+json"
            assert 1 <= int(response.headers["Retry-After"]) <= 60
            assert problem["detail"].startswith("too many failed logins")
        # Signed requests are not affected.
        assert (await cluster.client().whoami()).username == "admin"
    finally:
        await cluster.stop()


async def test_a_disabled_user_is_locked_out_at_once(live: LiveCluster, http: aiohttp.ClientSession) -> None:
    made = await _user(live, "ann")
    ann = live.client(made["access_key"], made["secret_key"])
    browser = Browser(live, http)
    await browser.login("ann", PASSWORD)
    admin = live.client()

    disabled = await admin.disable_user("ann")
    assert disabled["is_active"] is False and disabled["has_password"] is True
    with pytest.raises(AuthenticationFailed, match="disabled"):
        await ann.whoami()
    assert (await browser.request("GET", f"{API}/whoami"))[0] == 401
    status, problem, _ = await browser.login("ann", PASSWORD)
    assert status == 401 and "disabled" in problem["detail"]
    listed = {u["username"]: u for u in await admin.list_users()}
    assert listed["ann"]["is_active"] is False and listed["admin"]["is_active"] is True

    enabled = await admin.enable_user("ann")
    assert enabled["is_active"] is True
    assert (await ann.whoami()).username == "ann"
    assert (await browser.request("GET", f"{API}/whoami"))[0] == 401  # its session ended for good
    assert (await browser.login("ann", PASSWORD))[0] == 200
    with pytest.raises(PermissionDenied):
        await ann.disable_user("admin")

    # Not by themselves, not for others than admins, not for nobody.
    status, problem, _ = await Browser(live, http).request(
        "PATCH", f"{API}/users/admin", json={"is_active": False},
        headers=sign_request(live.admin_access_key, live.admin_secret_key, "PATCH", f"{API}/users/admin",
                             b'{"is_active": false}') | {"Content-Type": "application/json"},
    )
    assert status == 409, problem
    status, _, _ = await browser.request("PATCH", f"{API}/users/ann", json={"is_active": False})
    assert status == 403
    with pytest.raises(Exception, match="no user"):
        await admin.disable_user("nobody")


async def test_password_changes(live: LiveCluster, http: aiohttp.ClientSession) -> None:
    made = await _user(live, "ann", password=None)
    ann = live.client(made["access_key"], made["secret_key"])
    admin = live.client()
    # Rules, on creation and on change.
    for bad in ("short", "x" * 1025):
        with pytest.raises(InvalidRequest, match="characters"):
            await admin.create_user("cy", "user", bad)
    with pytest.raises(InvalidRequest, match="username"):
        await admin.create_user("longname", "user", "LongName")
    with pytest.raises(InvalidRequest, match="at least 8"):
        await ann.set_password("ann", "short")

    # A user with no password yet sets one with their keypair alone.
    await ann.set_password("ann", PASSWORD)
    first, second = Browser(live, http), Browser(live, http)
    assert (await first.login("ann", PASSWORD))[0] == 200
    assert (await second.login("ann", PASSWORD))[0] == 200

    # Their own change needs the current password.
    with pytest.raises(InvalidRequest, match="current_password"):
        await ann.set_password("ann", "another password")
    with pytest.raises(PermissionDenied, match="current password is wrong"):
        await ann.set_password("ann", "another password", "not it")
    with pytest.raises(PermissionDenied, match="only an admin"):
        await ann.set_password("admin", "another password")

    # From the browser: the session making the change stays, the user's others end.
    status, problem, _ = await first.request(
        "PUT", f"{API}/users/ann/password", json={"password": "another password", "current_password": PASSWORD}
    )
    assert status == 204, problem
    assert (await first.request("GET", f"{API}/whoami"))[0] == 200
    assert (await second.request("GET", f"{API}/whoami"))[0] == 401
    assert (await Browser(live, http).login("ann", PASSWORD))[0] == 401
    assert (await Browser(live, http).login("ann", "another password"))[0] == 200

    # An admin sets anyone's, without the current one; every web session of that user ends.
    await admin.set_password("ann", "set by the admin")
    assert (await first.request("GET", f"{API}/whoami"))[0] == 401
    assert (await Browser(live, http).login("ann", "set by the admin"))[0] == 200
    with pytest.raises(Exception, match="no user"):
        await admin.set_password("nobody", "whatever it is")


def _cli(live: LiveCluster, keys: tuple[str, str], *args: str, input: str | None = None) -> Any:
    from click.testing import CliRunner

    from corral.client.cli.main import main

    env = {"CORRAL_ENDPOINT": live.manager.url, "CORRAL_ACCESS_KEY": keys[0], "CORRAL_SECRET_KEY": keys[1],
           "CORRAL_CONFIG": str(live.root / "no-client.toml")}
    return CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)


async def test_the_cli_sets_passwords_and_disables_users(live: LiveCluster, http: aiohttp.ClientSession) -> None:
    admin = (live.admin_access_key, live.admin_secret_key)

    async def cli(keys: tuple[str, str], *args: str, input: str | None = None) -> Any:
        return await asyncio.to_thread(_cli, live, keys, *args, input=input)

    made = await cli(admin, "admin", "user", "create", "carol", "--password-stdin", input=f"{PASSWORD}\n")
    assert made.exit_code == 0, made.output
    assert "corral login " in made.stdout and f"web UI at {live.manager.url}/ as carol" in made.stdout
    carol = (made.stdout.split("CORRAL_ACCESS_KEY=")[1].split()[0],
             made.stdout.split("CORRAL_SECRET_KEY=")[1].split()[0])
    assert (await Browser(live, http).login("carol", PASSWORD))[0] == 200

    prompted = await cli(admin, "admin", "user", "create", "dave", "--password",
                         input="dave password\ndave password\n")
    assert prompted.exit_code == 0, prompted.output
    assert (await Browser(live, http).login("dave", "dave password"))[0] == 200
    short = await cli(admin, "admin", "user", "create", "erin", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and short.stderr.strip().splitlines() == [
        "error: the password must be 8-1024 characters long"]

    # Their own: the current password, then the new one.
    own = await cli(carol, "passwd", "--password-stdin", input=f"{PASSWORD}\ncarol's new password\n")
    assert own.exit_code == 0, own.output
    assert "password of carol set" in own.stderr
    assert (await Browser(live, http).login("carol", "carol's new password"))[0] == 200
    wrong = await cli(carol, "passwd", "--password-stdin", input="not it\nwhatever it is\n")
    assert wrong.exit_code == 3 and wrong.stderr.strip() == "error: the current password is wrong"
    # An admin sets anyone's (prompted twice, hidden).
    reset = await cli(admin, "passwd", "carol", input="reset password\nreset password\n")
    assert reset.exit_code == 0, reset.output
    assert (await Browser(live, http).login("carol", "reset password"))[0] == 200

    disabled = await cli(admin, "admin", "user", "disable", "carol")
    assert disabled.exit_code == 0 and "carol disabled" in disabled.stdout
    refused = await cli(carol, "whoami")
    assert refused.exit_code == 3 and refused.stderr.strip() == "error: authentication failed: user carol is disabled"
    listed = await cli(admin, "admin", "user", "ls", "--json")
    assert {u["username"]: u["is_active"] for u in json.loads(listed.stdout)}["carol"] is False
    enabled = await cli(admin, "admin", "user", "enable", "carol", "--json")
    assert enabled.exit_code == 0 and '"is_active": true' in enabled.stdout
    assert (await cli(carol, "whoami")).exit_code == 0
    missing = await cli(admin, "admin", "user", "disable", "nobody")
    assert missing.exit_code == 4 and missing.stderr.strip() == "error: no user 'nobody'"


async def test_corral_up_gives_the_admin_a_password_once(live: LiveCluster, http: aiohttp.ClientSession,
                                                         tmp_path: Path) -> None:
    from corral.client.embedded_stack import EmbeddedStack

    stack = EmbeddedStack(tmp_path / "data", "127.0.0.1", 0, write_client_config=False)
    stack.manager = live.manager  # what start() would have started
    path = await stack._ensure_admin_password()
    assert path == (tmp_path / "data" / "admin-password").resolve()
    assert path.stat().st_mode & 0o777 == 0o600
    password = path.read_text().strip()
    assert len(password) >= 16
    assert (await Browser(live, http).login("admin", password))[0] == 200
    assert await stack._ensure_admin_password() == path and path.read_text().strip() == password
    path.unlink()  # gone: the admin's password is kept all the same, never replaced behind their back
    assert await stack._ensure_admin_password() is None and not path.exists()
    assert (await Browser(live, http).login("admin", password))[0] == 200
