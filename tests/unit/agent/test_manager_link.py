"""The agent's link to the manager: events are delivered in order, before the heartbeat that follows them,
and one the manager refuses for good does not hold up the rest."""
from __future__ import annotations

from typing import Any, AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from corral.agent.config import ManagerLinkConfig
from corral.agent.manager_link import ManagerLink


class FakeManager:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.refuse_events_with: int | None = None
        self.destroy_after_events: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/internal/v1/kernel-events", self.events)
        app.router.add_post("/internal/v1/agents/heartbeat", self.heartbeat)
        return app

    async def events(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.refuse_events_with:
            return web.json_response({"type": "invalid-request"}, status=self.refuse_events_with)
        self.seen.append(("events", (body["agent_id"], [e["kernel_id"] for e in body["events"]])))
        return web.json_response({"accepted": len(body["events"]), "destroy": self.destroy_after_events})

    async def heartbeat(self, request: web.Request) -> web.Response:
        self.seen.append(("heartbeat", (await request.json())["kernels"]))
        return web.json_response({"destroy": []})


@pytest.fixture
async def manager() -> AsyncIterator[tuple[FakeManager, str]]:
    fake = FakeManager()
    server = TestServer(fake.app())
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def link_to(url: str, destroyed: list[list[str]] | None = None) -> ManagerLink:
    async def payload() -> dict[str, Any]:
        return {"agent_id": "a1", "kernels": []}  # k1 is no longer listed: it has ended

    async def on_destroy(ids: list[str]) -> None:
        if destroyed is not None:
            destroyed.append(ids)

    return ManagerLink(ManagerLinkConfig(url=url, cluster_secret="s", heartbeat_interval_s=60), "a1", payload, on_destroy)


async def test_queued_events_reach_the_manager_before_the_next_heartbeat(manager: tuple[FakeManager, str]) -> None:
    fake, url = manager
    link = link_to(url)
    link.send_event("kernel.terminated", "k1", exit_code=4)
    link.send_event("kernel.terminated", "k2", exit_code=0)
    await link.heartbeat_now()
    assert fake.seen == [("events", ("a1", ["k1", "k2"])), ("heartbeat", [])]
    await link.stop()


async def test_events_the_manager_refuses_for_good_are_dropped_not_retried(manager: tuple[FakeManager, str]) -> None:
    fake, url = manager
    fake.refuse_events_with = 400
    link = link_to(url)
    link.send_event("kernel.terminated", "k1")
    await link.heartbeat_now()  # not held up by the refused batch
    fake.refuse_events_with = None
    link.send_event("kernel.running", "k2")
    await link.heartbeat_now()
    assert fake.seen == [("heartbeat", []), ("events", ("a1", ["k2"])), ("heartbeat", [])]
    await link.stop()


async def test_events_wait_while_the_manager_is_down_and_keep_their_order(manager: tuple[FakeManager, str]) -> None:
    fake, url = manager
    fake.refuse_events_with = 503
    link = link_to(url)
    link.send_event("kernel.running", "k1")
    with pytest.raises(RuntimeError):
        await link.heartbeat_now()  # no heartbeat may overtake undelivered events
    link.send_event("kernel.terminated", "k1")
    fake.refuse_events_with = None
    await link.heartbeat_now()
    assert fake.seen == [("events", ("a1", ["k1", "k1"])), ("heartbeat", [])]
    await link.stop()


async def test_kernels_the_manager_no_longer_wants_are_removed(manager: tuple[FakeManager, str]) -> None:
    fake, url = manager
    fake.destroy_after_events = ["k9"]
    destroyed: list[list[str]] = []
    link = link_to(url, destroyed)
    link.send_event("kernel.running", "k9")
    await link.heartbeat_now()
    await link.stop()  # waits for the removal it started
    assert destroyed == [["k9"]]
