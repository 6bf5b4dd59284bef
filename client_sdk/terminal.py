"""A shell in a session, over the manager's terminal websocket (`corral.common.terminal_protocol`)."""
from __future__ import annotations

import json
from typing import AsyncIterator

import aiohttp

from corral.common.errors import ServiceUnavailable
from corral.common.terminal_protocol import ATTACHED, ERROR, EXIT, resize_message


class TerminalConnection:
    """One attached terminal. ``pty_id`` re-attaches to the same shell later (``attach=``)."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse, pty_id: str) -> None:
        self._socket = socket
        self.pty_id = pty_id
        self.exit_code: int | None = None
        self.exited = False

    @classmethod
    async def attach(cls, socket: aiohttp.ClientWebSocketResponse) -> "TerminalConnection":
        """Wait for the session's ``attached`` message."""
        message = await socket.receive()
        control = _control(message)
        if control is None or control.get("type") != ATTACHED or not isinstance(control.get("pty"), str):
            await socket.close()
            raise ServiceUnavailable(f"the session did not open a terminal: {_describe(message)}")
        return cls(socket, control["pty"])

    async def send(self, data: bytes) -> None:
        """Keystrokes (or any input) for the shell."""
        await self._socket.send_bytes(data)

    async def resize(self, rows: int, cols: int) -> None:
        await self._socket.send_str(resize_message(rows, cols))

    async def output(self) -> AsyncIterator[bytes]:
        """The shell's output until it exits (``exit_code`` is set then) or the connection is dropped.

        Raises ``ServiceUnavailable`` when the connection to the session is lost; the shell lives on for a
        while, and attaching again with ``pty_id`` finds it.
        """
        async for message in self._socket:
            if message.type == aiohttp.WSMsgType.BINARY:
                yield message.data
                continue
            control = _control(message)
            if control is None:
                break
            if control.get("type") == EXIT:
                self.exited = True
                code = control.get("code")
                self.exit_code = code if isinstance(code, int) else None
                return
            if control.get("type") == ERROR:
                raise ServiceUnavailable(str(control.get("detail") or "connection to the session was lost"))
        if not self.exited:
            raise ServiceUnavailable("connection to the session was lost")

    async def close(self) -> None:
        """Detach (the shell keeps running for a grace period unless it has exited)."""
        await self._socket.close()


def _control(message: aiohttp.WSMessage) -> dict[str, object] | None:
    if message.type != aiohttp.WSMsgType.TEXT:
        return None
    try:
        value = json.loads(message.data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _describe(message: aiohttp.WSMessage) -> str:
    if message.type == aiohttp.WSMsgType.TEXT:
        return message.data[:200]
    return f"websocket {message.type.name.lower()}"
