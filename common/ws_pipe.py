"""Copying websocket messages between two websockets (either end a server or a client socket)."""
from __future__ import annotations

import asyncio
from typing import Callable

import aiohttp
from aiohttp import web

Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
# A peer that closes with 1000 is done; anything else (1001: its server is shutting down, 1006: gone)
# means the conversation was cut.
CLEAN_CLOSE_CODES = frozenset({aiohttp.WSCloseCode.OK})


async def copy_messages(source: Socket, target: Socket, watch: Callable[[str], None] | None = None,
                        on_message: Callable[[], None] | None = None) -> None:
    """Every message from ``source`` to ``target`` until ``source`` closes; ``watch`` sees the text ones,
    ``on_message`` hears of each one (it must be cheap: it runs per message).
    Each send waits for the target's transport to take the bytes (back-pressure)."""
    async for message in source:
        if on_message is not None and message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            on_message()
        if message.type == aiohttp.WSMsgType.BINARY:
            await target.send_bytes(message.data)
        elif message.type == aiohttp.WSMsgType.TEXT:
            if watch is not None:
                watch(message.data)
            await target.send_str(message.data)
        else:
            break


async def pipe(a: Socket, b: Socket, lost: str | None = None, on_message: Callable[[], None] | None = None) -> None:
    """Both ways until either side closes; then the other is closed with the same code. With ``lost``,
    ``b`` ending without a clean close (its peer went away) closes ``a`` with 1011 and that reason.
    ``on_message`` hears of every message either way (cheap: see `copy_messages`)."""
    a_to_b = asyncio.ensure_future(copy_messages(a, b, on_message=on_message))
    b_to_a = asyncio.ensure_future(copy_messages(b, a, on_message=on_message))
    tasks = [a_to_b, b_to_a]
    b_ended_first = False
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        b_ended_first = done == {b_to_a}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if lost is not None and b_ended_first and b.close_code not in CLEAN_CLOSE_CODES and not a.closed:
            await a.close(code=aiohttp.WSCloseCode.INTERNAL_ERROR, message=lost.encode()[:120])
        code = a.close_code if a.closed else b.close_code
        for socket in (a, b):
            await socket.close(code=code if code in CLEAN_CLOSE_CODES else aiohttp.WSCloseCode.OK)
