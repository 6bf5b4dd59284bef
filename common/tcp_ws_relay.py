"""A websocket carrying a TCP byte stream: binary messages ↔ a TCP connection to a session's service (made
inside the container by its runner and handed over as a descriptor). The agent relays its tunnels with it;
a manager whose agent runs in its own process (the embedded stack) relays with it directly.

Each direction waits for its target to take the bytes (the websocket's send, the socket's drain),
so a slow client slows the service down instead of filling the agent's memory."""
from __future__ import annotations

import asyncio
import contextlib
from typing import Callable

import aiohttp
from aiohttp import web

READ_CHUNK = 256 * 1024


async def relay_tcp(socket: web.WebSocketResponse, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    on_traffic: Callable[[], None] | None = None) -> None:
    """``on_traffic`` hears of every chunk either way (it must be cheap)."""
    tasks = [asyncio.ensure_future(_to_service(socket, writer, on_traffic)),
             asyncio.ensure_future(_from_service(socket, reader, on_traffic))]
    # 1000 only when the service or the client ended the connection; an agent going down says so (1001).
    code = aiohttp.WSCloseCode.GOING_AWAY
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        code = aiohttp.WSCloseCode.OK
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
        await socket.close(code=code)


async def _to_service(socket: web.WebSocketResponse, writer: asyncio.StreamWriter,
                      on_traffic: Callable[[], None] | None) -> None:
    """An empty binary message is the client's half-close: the service sees EOF and may still answer."""
    async for message in socket:
        if message.type == aiohttp.WSMsgType.BINARY:
            if not message.data:
                _half_close(writer)
                continue
            if on_traffic is not None:
                on_traffic()
            writer.write(message.data)
            await writer.drain()
        elif message.type != aiohttp.WSMsgType.TEXT:
            break


def _half_close(writer: asyncio.StreamWriter) -> None:
    if writer.can_write_eof() and not writer.is_closing():
        with contextlib.suppress(ConnectionError, OSError):
            writer.write_eof()


async def _from_service(socket: web.WebSocketResponse, reader: asyncio.StreamReader,
                        on_traffic: Callable[[], None] | None) -> None:
    while data := await reader.read(READ_CHUNK):
        if on_traffic is not None:
            on_traffic()
        await socket.send_bytes(data)
