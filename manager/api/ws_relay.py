"""Copying a websocket conversation between a client and an agent, both ways, with back-pressure."""
from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Callable

import aiohttp
from aiohttp import web

from corral.common.terminal_protocol import ERROR, EXIT
from corral.common.ws_pipe import copy_messages

LOST = "connection to the session was lost"


async def relay(client: web.WebSocketResponse, agent: aiohttp.ClientWebSocketResponse,
                on_message: Callable[[], None] | None = None) -> None:
    """Until either side closes; then the other is closed too. Each send waits for the receiving side to
    take the bytes, so a slow reader slows the writer down instead of filling the manager's memory.
    If the agent's side ends without the session saying so (an agent restart), the client is told.
    ``on_message`` hears of every message either way (the session's activity)."""
    ended_cleanly = asyncio.Event()

    def watch(text: str) -> None:
        if _is_exit(text):
            ended_cleanly.set()

    tasks = [asyncio.ensure_future(copy_messages(client, agent, on_message=on_message)),
             asyncio.ensure_future(copy_messages(agent, client, watch, on_message=on_message))]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[1] in done and not ended_cleanly.is_set() and not client.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await client.send_str(json.dumps({"type": ERROR, "detail": LOST}))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await agent.close()
        await client.close()


def _is_exit(text: str) -> bool:
    try:
        return json.loads(text).get("type") == EXIT
    except (ValueError, AttributeError):
        return False
