"""A TCP connection to a session's service over the manager's websocket, and local listeners for it.

``corral app`` listens locally and opens one tunnel per accepted connection; ``corral ssh-proxy``
splices one tunnel to its stdin/stdout. Both directions wait for the other side to take the bytes,
so memory stays flat however fast either end is."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable

import aiohttp

from corral.common.errors import ServiceUnavailable

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024
LOST = "connection to the session was lost"


class Tunnel:
    """One TCP connection to the service: ``send`` bytes, ``receive`` bytes (b"" once it ends)."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket

    async def send(self, data: bytes) -> None:
        await self._socket.send_bytes(data)

    async def receive(self) -> bytes:
        """The next bytes from the service; b"" when it closed the connection. Raises ServiceUnavailable
        when the connection to the session was lost (an agent restart, the session ending)."""
        message = await self._socket.receive()
        if message.type == aiohttp.WSMsgType.BINARY:
            return message.data
        if message.type == aiohttp.WSMsgType.TEXT:
            return message.data.encode()
        if self._socket.close_code == aiohttp.WSCloseCode.OK:
            return b""
        reason = message.extra if isinstance(message.extra, str) and message.extra else LOST
        raise ServiceUnavailable(reason)

    async def close(self) -> None:
        await self._socket.close()

    async def splice(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copies between a local stream and the tunnel until either ends; then closes both."""
        tasks = [asyncio.ensure_future(self._upload(reader)), asyncio.ensure_future(self._download(writer))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.close()
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                writer.close()

    async def _upload(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(READ_CHUNK):
            await self.send(data)
        await self.send_eof()
        await asyncio.Event().wait()  # the service's answer may still be coming: _download ends it

    async def send_eof(self) -> None:
        """Half-closes towards the service (it reads EOF; its answer still comes back)."""
        await self._socket.send_bytes(b"")

    async def _download(self, writer: asyncio.StreamWriter) -> None:
        while data := await self.receive():
            writer.write(data)
            await writer.drain()


TunnelOpener = Callable[[], Awaitable[Tunnel]]


async def serve_local(open_tunnel: TunnelOpener, host: str, port: int) -> asyncio.Server:
    """Listens on host:port; each connection gets a tunnel of its own."""

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            tunnel = await open_tunnel()
        except Exception as exc:  # noqa: BLE001 - one refused connection must not stop the listener
            log.warning("could not open a tunnel: %s", getattr(exc, "detail", exc))
            writer.close()
            return
        try:
            await tunnel.splice(reader, writer)
        except ServiceUnavailable as exc:
            log.warning("%s", exc.detail)
        except (ConnectionError, OSError):
            pass

    return await asyncio.start_server(on_connection, host, port, limit=READ_CHUNK)
