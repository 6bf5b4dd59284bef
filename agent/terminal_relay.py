"""A kernel's terminal on the agent: the manager's websocket ↔ the runner's pty frames.

Each hop waits for the next to take the bytes (websocket sends, runner socket drains),
so a slow client slows the shell down rather than filling the agent's memory.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import aiohttp
from aiohttp import web

from corral.common.errors import CorralError
from corral.common.terminal_protocol import ATTACHED, ERROR, EXIT, RESIZE, TerminalSize, parse_control
from corral.kernels import contract

from .runner_client import PtyConnection

log = logging.getLogger(__name__)

LOST = "connection to the session's shell was lost"


async def relay_pty(socket: web.WebSocketResponse, pty: PtyConnection) -> None:
    await socket.send_str(json.dumps({"type": ATTACHED, "pty": pty.pty_id}))
    from_shell = asyncio.ensure_future(_from_shell(socket, pty))
    to_shell = asyncio.ensure_future(_to_shell(socket, pty))
    try:
        await asyncio.wait([from_shell, to_shell], return_when=asyncio.FIRST_COMPLETED)
        if from_shell.done() and not from_shell.cancelled() and from_shell.exception() is not None:
            log.info("pty %s: %s", pty.pty_id, from_shell.exception())
            with contextlib.suppress(ConnectionError, RuntimeError):
                await socket.send_str(json.dumps({"type": ERROR, "detail": LOST}))
    finally:
        for task in (from_shell, to_shell):
            task.cancel()
        await asyncio.gather(from_shell, to_shell, return_exceptions=True)
        await pty.close()  # the shell lives on for the runner's grace period, unless it exited
        await socket.close()


async def _from_shell(socket: web.WebSocketResponse, pty: PtyConnection) -> None:
    while True:
        kind, payload = await pty.read_frame()
        if kind == contract.PTY_FRAME_DATA:
            await socket.send_bytes(payload)
        elif kind == contract.PTY_FRAME_EXIT:
            code = _json(payload).get("code")
            await socket.send_str(json.dumps({"type": EXIT, "code": code if isinstance(code, int) else None}))
            return
        elif kind == contract.PTY_FRAME_ERROR:
            detail = _json(payload).get("error") or "the shell's terminal failed"
            await socket.send_str(json.dumps({"type": ERROR, "detail": str(detail)}))
            return
        # PONG: nothing to do; the runner answers our keepalives, the websocket has its own.


async def _to_shell(socket: web.WebSocketResponse, pty: PtyConnection) -> None:
    async for message in socket:
        if message.type == aiohttp.WSMsgType.BINARY:
            await pty.send_input(message.data)
        elif message.type == aiohttp.WSMsgType.TEXT:
            try:
                control = parse_control(message.data)
                if control["type"] == RESIZE:
                    size = TerminalSize.from_resize(control)
                    await pty.resize(size.rows, size.cols)
            except CorralError as exc:
                await socket.send_str(json.dumps({"type": ERROR, "detail": exc.detail}))
        else:
            return


def _json(payload: bytes) -> dict[str, object]:
    try:
        value = json.loads(payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}



