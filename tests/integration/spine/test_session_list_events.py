"""GET /api/v1/sessions/events: the list-level stream of status changes (the web UI's live session list).

No agent: sessions in a resource group without one stay PENDING until destroyed (CANCELLED at once).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from corral.common.signing import sign_request

from .cluster import LiveCluster

PATH = "/api/v1/sessions/events"
NOWHERE = {"resource_group": "nowhere", "resources": {"mem": "64m"}}


@pytest.fixture
async def cluster(manager_only: LiveCluster) -> LiveCluster:
    await manager_only.client().create_resource_group("nowhere")  # no agent there
    return manager_only  # this file needs no agent


class Stream:
    """One open stream: its events as (id, data) in the order they came."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.response.content.readline()).decode().rstrip("\n")
                if line == "" and "data" in fields:
                    assert fields.get("event") == "status"
                    return int(fields["id"]), json.loads(fields["data"])
                if line and not line.startswith(":"):
                    key, value = line.split(": ", 1)
                    fields[key] = value

    async def nothing_for(self, seconds: float) -> None:
        with pytest.raises(TimeoutError):
            await self.next(timeout=seconds)


async def open_stream(http: aiohttp.ClientSession, cluster: LiveCluster, keys: tuple[str, str],
                      query: str = "", last_event_id: str | None = None) -> Stream:
    path = PATH + query
    headers = sign_request(*keys, "GET", path, b"")
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    response = await http.get(cluster.manager.url + path, headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/event-stream"
    assert (await response.content.readline()).startswith(b": subscribed")
    return Stream(response)


async def test_each_user_sees_their_own_sessions_and_admins_all(cluster: LiveCluster) -> None:
    admin_keys = (cluster.admin_access_key, cluster.admin_secret_key)
    bob_keys = await cluster.add_user("bob")
    admin, bob = cluster.client(), cluster.client(*bob_keys)
    async with aiohttp.ClientSession() as http:
        mine = await open_stream(http, cluster, bob_keys)
        everyone = await open_stream(http, cluster, admin_keys, "?all_users=1")
        own = await open_stream(http, cluster, admin_keys)

        theirs = await admin.create_session(name="admins", **NOWHERE)
        _, seen = await everyone.next()
        assert seen["session_id"] == theirs.id and seen["status"] == "PENDING"
        assert (await own.next())[1]["session_id"] == theirs.id
        await mine.nothing_for(1.5)  # bob is not told about the admin's session

        his = await bob.create_session(name="bobs", **NOWHERE)
        first_id, created = await mine.next()
        assert created["session_id"] == his.id
        await bob.destroy_session(his.id)
        cancelled_id, cancelled = await mine.next()
        assert cancelled["status"] == "CANCELLED" and cancelled_id > first_id
        assert [(await everyone.next())[1]["status"] for _ in range(2)] == ["PENDING", "CANCELLED"]
        await own.nothing_for(1.5)

        # A reconnect with Last-Event-ID gets what it missed since then.
        again = await open_stream(http, cluster, bob_keys, last_event_id=str(first_id))
        assert await again.next() == (cancelled_id, cancelled)
        for stream in (mine, everyone, own, again):
            stream.response.close()

        # all_users is for admins only.
        headers = sign_request(*bob_keys, "GET", PATH + "?all_users=1", b"")
        async with http.get(cluster.manager.url + PATH + "?all_users=1", headers=headers) as refused:
            assert refused.status == 403


async def test_the_route_name_is_not_a_session_name(cluster: LiveCluster) -> None:
    from corral.common.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="reserved"):
        await cluster.client().create_session(name="events", **NOWHERE)
