"""Replay protection holds across managers and restarts: a signed request's nonce is
recorded in the database every manager shares, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from corral.client.config import ClientConfig
from corral.client.api import AsyncCorralClient
from corral.common.errors import AuthenticationFailed
from corral.common.ids import new_access_key, new_secret_key
from corral.common.signing import MAX_SKEW, sign_request
from corral.manager.auth import REPLAY_MESSAGE, NonceLedger, RequestAuthenticator
from corral.manager.bootstrap import ensure_user
from corral.manager.db.engine import create_engine, make_sessionmaker
from corral.manager.db.migrate import upgrade_to_head
from corral.manager.db.models import RequestNonce, Session
from corral.manager.server import ManagerServer

from .cluster import LiveCluster

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
_NOT_FORWARDED = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class WireRequest:
    """One request exactly as a client put it on the wire."""

    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


async def send(base_url: str, wire: WireRequest) -> tuple[int, Any]:
    """Send recorded bytes again; the status and the decoded JSON answer."""
    async with aiohttp.ClientSession() as http:
        url = URL(base_url + wire.path_qs, encoded=True)
        async with http.request(wire.method, url, headers=wire.headers, data=wire.body or None) as response:
            return response.status, await response.json(content_type=None)


class RecordingProxy:
    """Forwards every request to a manager and keeps its bytes, so a test can replay what the SDK sent."""

    def __init__(self, target_url: str) -> None:
        self.target_url = target_url
        self.requests: list[WireRequest] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        wire = WireRequest(request.method, request.raw_path, headers, await request.read())
        self.requests.append(wire)
        async with aiohttp.ClientSession() as http:
            url = URL(self.target_url + wire.path_qs, encoded=True)
            async with http.request(wire.method, url, headers=wire.headers, data=wire.body or None) as answer:
                body = await answer.read()
                return web.Response(status=answer.status, body=body,
                                    headers={"Content-Type": answer.headers.get("Content-Type", "")})


@pytest.fixture
async def managers(db_url: str) -> AsyncIterator[LiveCluster]:
    """Managers only (no agents, no Docker): start as many as a test needs on one database."""
    cluster = LiveCluster(db_url=db_url, heartbeat_timeout_s=3.0)
    try:
        yield cluster
    finally:
        await cluster.stop()


@pytest.fixture
async def recorder() -> AsyncIterator[list[RecordingProxy]]:
    proxies: list[RecordingProxy] = []
    try:
        yield proxies
    finally:
        for proxy in proxies:
            await proxy.stop()


async def _create_session_through(proxies: list[RecordingProxy], cluster: LiveCluster,
                                  manager: ManagerServer) -> WireRequest:
    """The SDK creates a session on ``manager`` through a recording proxy; the request it sent."""
    proxy = RecordingProxy(manager.url)
    await proxy.start()
    proxies.append(proxy)
    client = AsyncCorralClient(ClientConfig(proxy.url, cluster.admin_access_key, cluster.admin_secret_key))
    cluster.clients.append(client)
    await client.create_session(name="once", resources={"cpu": "1", "mem": "256m"})
    (wire,) = [r for r in proxy.requests if r.method == "POST"]
    return wire


async def _session_count(manager: ManagerServer) -> int:
    async with manager.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(Session)) or 0


def _assert_replay_refused(status: int, doc: Any) -> None:
    assert status == 401, doc
    assert REPLAY_MESSAGE in doc["detail"], doc


# -- one authenticator -----------------------------------------------------------


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    await upgrade_to_head(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_the_same_signed_request_is_accepted_once(engine: AsyncEngine, aiohttp_client: Any) -> None:
    sessionmaker = make_sessionmaker(engine)
    access, secret = new_access_key(), new_secret_key()
    await ensure_user(sessionmaker, "alice", "user", access, secret)
    authenticator = RequestAuthenticator(sessionmaker)

    async def whoami(request: web.Request) -> web.Response:
        try:
            user = await authenticator.authenticate(request)
        except AuthenticationFailed as exc:
            return web.json_response({"detail": str(exc)}, status=401)
        return web.json_response({"username": user.username})

    app = web.Application()
    app.router.add_post("/api/v1/whoami", whoami)
    client = await aiohttp_client(app)
    body = b'{"x": 1}'
    headers = sign_request(access, secret, "POST", "/api/v1/whoami?a=1", body)

    first = await client.post("/api/v1/whoami?a=1", data=body, headers=headers)
    assert first.status == 200 and (await first.json())["username"] == "alice"
    again = await client.post("/api/v1/whoami?a=1", data=body, headers=headers)
    _assert_replay_refused(again.status, await again.json())
    fresh = await client.post("/api/v1/whoami?a=1", data=body,
                              headers=sign_request(access, secret, "POST", "/api/v1/whoami?a=1", body))
    assert fresh.status == 200  # a new nonce, the same everything else: a new request


async def test_concurrent_uses_of_one_nonce_let_exactly_one_through(engine: AsyncEngine, db_url: str) -> None:
    other_engine = create_engine(db_url)  # a second manager's own connection pool
    try:
        ledgers = [NonceLedger(make_sessionmaker(e)) for e in (engine, other_engine)]
        outcomes = await asyncio.gather(
            *(ledgers[i % 2].use("AK1", "n1", datetime.now(timezone.utc)) for i in range(10)),
            return_exceptions=True,
        )
    finally:
        await other_engine.dispose()
    assert sum(outcome is None for outcome in outcomes) == 1, outcomes
    assert all(isinstance(o, AuthenticationFailed) for o in outcomes if o is not None), outcomes


# -- the real manager ------------------------------------------------------------------


async def test_a_request_sent_to_one_manager_is_refused_by_another(
    managers: LiveCluster, recorder: list[RecordingProxy]
) -> None:
    manager_a = await managers.start_manager()
    manager_b = await managers.start_manager()
    wire = await _create_session_through(recorder, managers, manager_a)

    _assert_replay_refused(*await send(manager_b.url, wire))
    _assert_replay_refused(*await send(manager_a.url, wire))
    assert await _session_count(manager_b) == 1


async def test_a_request_is_refused_after_the_manager_restarts(
    managers: LiveCluster, recorder: list[RecordingProxy]
) -> None:
    first = await managers.start_manager()
    wire = await _create_session_through(recorder, managers, first)
    await first.stop()
    managers.managers.remove(first)

    restarted = await managers.start_manager()
    _assert_replay_refused(*await send(restarted.url, wire))
    assert await _session_count(restarted) == 1


# -- expiry ----------------------------------------------------------------------------


async def _nonces(engine: AsyncEngine) -> set[str]:
    async with make_sessionmaker(engine)() as db:
        return set(await db.scalars(select(RequestNonce.nonce)))


async def test_expired_nonces_are_purged(engine: AsyncEngine) -> None:
    ledger = NonceLedger(make_sessionmaker(engine), clock=lambda: NOW)
    await ledger.use("AK1", "current", NOW)  # the first use after a start purges; the next ones are not due
    await ledger.use("AK1", "stale", NOW - MAX_SKEW * 3)
    await ledger.use("AK1", "recent", NOW - MAX_SKEW)
    assert await _nonces(engine) == {"stale", "recent", "current"}

    assert await ledger.purge_expired() == 1
    assert await _nonces(engine) == {"recent", "current"}
    with pytest.raises(AuthenticationFailed, match="replayed"):
        await ledger.use("AK1", "recent", NOW - MAX_SKEW)  # its request's date is still acceptable


async def test_purging_happens_periodically_on_use(engine: AsyncEngine) -> None:
    clock = [NOW]
    late = NOW + MAX_SKEW * 3
    lazy = NonceLedger(make_sessionmaker(engine), purge_interval_s=3600, clock=lambda: clock[0])
    await lazy.use("AK1", "a", NOW)
    clock[0] = late  # "a" has expired
    await lazy.use("AK1", "b", late)
    assert await _nonces(engine) == {"a", "b"}  # not due: no purge on every request

    eager = NonceLedger(make_sessionmaker(engine), purge_interval_s=0, clock=lambda: clock[0])
    await eager.use("AK1", "c", late)
    assert await _nonces(engine) == {"b", "c"}
    clock[0] = late + MAX_SKEW * 3  # now "b" and "c" have expired too
    await eager.use("AK1", "d", clock[0])
    assert await _nonces(engine) == {"d"}
