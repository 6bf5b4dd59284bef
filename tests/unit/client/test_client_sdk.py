"""The async and sync SDK against the fake manager (which verifies signatures)."""
from __future__ import annotations

import asyncio
import socket

import pytest

from corral.client.api import AsyncCorralClient
from corral.client.config import ClientConfig
from corral.client.errors import SessionFailed, WaitTimeout
from corral.client.resources import build_resources
from corral.client.sync import CorralClient
from corral.common.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    UnsatisfiableRequest,
)
from fake_corral_manager import ACCESS_KEY, BAD_IMAGE, USER_ACCESS_KEY, USER_SECRET_KEY, FakeManager


async def test_requests_are_signed_and_verified(client: AsyncCorralClient, fake_manager: FakeManager) -> None:
    me = await client.whoami()
    assert (me.access_key, me.role) == (ACCESS_KEY, "admin")
    session = await client.create_session(name="sig test", resources={"cpu": "1"})
    page = await client.list_sessions(status=["running", "PENDING"], limit=5)
    assert [s.id for s in page.items] == [session.id]
    await client.get_session("sig test")  # a name with a space: quoted, and signed as sent
    assert all(r.access_key == ACCESS_KEY for r in fake_manager.requests)
    paths = [r.raw_path for r in fake_manager.requests]
    assert "/api/v1/sessions?status=RUNNING,PENDING&limit=5" in paths
    assert "/api/v1/sessions/sig%20test" in paths


async def test_health_is_unsigned(client: AsyncCorralClient) -> None:
    health = await client.health()
    assert (health.status, health.version) == ("ok", "0.0-fake")


async def test_wrong_secret_is_authentication_failed(client: AsyncCorralClient) -> None:
    bad = AsyncCorralClient(ClientConfig(client.endpoint, ACCESS_KEY, "not-the-secret"))
    async with bad:
        with pytest.raises(AuthenticationFailed, match="signature does not match"):
            await bad.whoami()


async def test_problem_documents_become_typed_errors(client: AsyncCorralClient) -> None:
    with pytest.raises(NotFound, match="no session 'nope'"):
        await client.get_session("nope")
    with pytest.raises(UnsatisfiableRequest) as info:
        await client.create_session(resources={"cuda.device": 16})
    assert info.value.extra["resource"] == "cuda.device"
    assert info.value.http_status == 422  # type: ignore[attr-defined]
    with pytest.raises(InvalidRequest, match="type must be"):
        await client.create_session(type="weird")
    session = await client.create_session()
    with pytest.raises(Conflict, match="not RUNNING"):
        async for _ in client.execute(session.id, "print(1)"):
            pass


async def test_non_problem_error_maps_by_status(client: AsyncCorralClient) -> None:
    with pytest.raises(NotFound, match="HTTP 404"):
        await client._json("GET", "/api/v1/no-such-route")


async def test_user_keypair_cannot_list_agents(client: AsyncCorralClient) -> None:
    user = AsyncCorralClient(ClientConfig(client.endpoint, USER_ACCESS_KEY, USER_SECRET_KEY))
    async with user:
        with pytest.raises(PermissionDenied):
            await user.list_agents()
    agents = await client.list_agents()
    assert agents[0].id == "i-fake" and agents[0].available_slots["cpu"] == "8"


async def test_session_lifecycle_execute_and_logs(client: AsyncCorralClient) -> None:
    session = await client.create_session(
        image="corral/python:latest", env={"A": "1"}, resources=build_resources(cpu=1, mem="1g")
    )
    assert session.status == "PENDING" and session.requested_slots == {"cpu": "1", "mem": str(1 << 30)}
    running = await client.wait_for_status(session.id, {"RUNNING"}, timeout=10)
    assert running.status == "RUNNING" and running.kernels[0].container_id
    events = [e async for e in client.execute(session.id, "import sys; print('hi'); print('oops', file=sys.stderr)")]
    def text(stream: str) -> str:
        return "".join(e["data"] for e in events if e["op"] == "output" and e["stream"] == stream)

    assert (text("stdout"), text("stderr")) == ("hi\n", "oops\n")
    assert events[-1] == {"op": "result", "status": "ok", "exit_code": 0, "error": None}
    result = await client.execute_collect(session.id, "raise SystemExit(7)")
    assert (result.status, result.exit_code) == ("error", 7)
    assert "log of" in await client.logs(session.id[:6])
    destroyed = await client.destroy_session(session.id)
    assert destroyed.status in ("TERMINATING", "TERMINATED")
    history = [c.status for c in (await client.get_session(session.id)).status_history]
    assert history == ["PENDING", "SCHEDULED", "PREPARING", "RUNNING", "TERMINATING", "TERMINATED"]


async def test_watch_session_replays_history_then_follows(client: AsyncCorralClient) -> None:
    session = await client.create_session()
    seen = []
    async for change in client.watch_session(session.id):
        seen.append(change.status)
        if change.status == "RUNNING":
            await client.destroy_session(session.id)
    assert seen == ["PENDING", "SCHEDULED", "PREPARING", "RUNNING", "TERMINATING", "TERMINATED"]


async def test_wait_for_status_raises_when_session_fails(client: AsyncCorralClient) -> None:
    session = await client.create_session(image=BAD_IMAGE)
    with pytest.raises(SessionFailed) as info:
        await client.wait_for_status(session.id, {"RUNNING"}, timeout=10)
    assert info.value.session.status == "ERROR"
    assert str(info.value) == f"session {session.name} failed: image {BAD_IMAGE} not found on agent i-fake"


async def test_wait_for_status_polls_without_event_stream(client: AsyncCorralClient, fake_manager: FakeManager) -> None:
    fake_manager.events_enabled = False
    session = await client.create_session()
    running = await client.wait_for_status(session.id, {"RUNNING"}, timeout=10, poll_interval=0.01)
    assert running.status == "RUNNING"
    assert any(r.raw_path.endswith("/events") for r in fake_manager.requests)


async def test_wait_for_status_times_out(client: AsyncCorralClient, fake_manager: FakeManager) -> None:
    fake_manager.step_delay = 5
    session = await client.create_session()
    with pytest.raises(WaitTimeout, match="last status: PENDING"):
        await client.wait_for_status(session.id, {"RUNNING"}, timeout=0.2)


async def test_iter_sessions_follows_cursors(client: AsyncCorralClient, fake_manager: FakeManager) -> None:
    fake_manager.step_delay = 5
    created = [await client.create_session(name=f"s{i}") for i in range(5)]
    listed = [s.id async for s in client.iter_sessions(page_size=2)]
    assert listed == [s.id for s in created]
    assert sum("/api/v1/sessions?limit=2" in r.raw_path for r in fake_manager.requests) == 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_manager_is_service_unavailable() -> None:
    endpoint = f"http://127.0.0.1:{_free_port()}"
    async with AsyncCorralClient(ClientConfig(endpoint, "a", "b")) as c:
        with pytest.raises(ServiceUnavailable) as info:
            await c.whoami()
    assert endpoint in str(info.value) and "connection refused" in str(info.value)


def test_sync_client_mirrors_async_api(manager_url: str) -> None:
    config = ClientConfig(manager_url, ACCESS_KEY, "test-secret-key-0123456789")
    with CorralClient(config) as c:
        assert c.health().status == "ok"
        session = c.create_session(resources={"cpu": "0.5"})
        c.wait_for_status(session.id, {"RUNNING"}, timeout=10)
        assert c.execute_collect(session.id, "print(6 * 7)").stdout == "42\n"
        ops = [e["op"] for e in c.execute(session.id, "print(1)")]
        assert ops[-1] == "result"
        assert [s.id for s in c.iter_sessions()] == [session.id]
        c.destroy_session(session.id)
        with pytest.raises(NotFound):
            c.get_session("missing")


def test_sync_client_works_inside_a_running_loop(manager_url: str) -> None:
    async def notebook_cell() -> str:
        with CorralClient(ClientConfig(manager_url, ACCESS_KEY, "test-secret-key-0123456789")) as c:
            return c.health().status

    assert asyncio.run(notebook_cell()) == "ok"


def test_build_resources_validates() -> None:
    assert build_resources(cpu="2", mem="512m", gpu_share="0.25") == {
        "cpu": "2", "mem": 512 << 20, "cuda.shares": "0.25"
    }
    assert build_resources(gpus=2) == {"cuda.device": 2}
    for bad in ({"cpu": "-1"}, {"mem": "lots"}, {"gpus": 1, "gpu_share": "0.5"}, {"gpu_share": "nan"}):
        with pytest.raises(InvalidRequest):
            build_resources(**bad)  # type: ignore[arg-type]
