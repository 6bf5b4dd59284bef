"""Talks to the in-container runner over its Unix socket (newline-delimited JSON)."""
from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any, AsyncIterator

from corral.common.errors import BackendError

SOCKET_NAME = "runner.sock"


class ContainerExitedEarly(BackendError):
    """The container ended before its runner answered (a quick batch job, or a crash)."""

LINE_LIMIT = 64 << 20


async def _open(socket_path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    # Unix socket paths are limited to ~107 bytes; connect relative to the directory when long.
    path = str(socket_path)
    if len(path) > 100:
        fd = os.open(socket_path.parent, os.O_RDONLY)
        try:
            path = f"/proc/self/fd/{fd}/{socket_path.name}"
            return await asyncio.open_unix_connection(path, limit=LINE_LIMIT)
        finally:
            os.close(fd)
    return await asyncio.open_unix_connection(path, limit=LINE_LIMIT)


async def wait_until_ready(socket_path: Path, timeout: float, is_alive: Any = None) -> None:
    """Poll for the runner's socket and ping it; ``is_alive`` aborts early if the container died.

    The socket usually appears within ~100 ms of the container starting, so
    polling is a cheap ``stat`` every 10 ms at first; the (costlier) liveness
    check asks the engine only every quarter second.
    """
    started = time.monotonic()
    deadline = started + timeout
    next_liveness_check = started + 0.25
    while True:
        if socket_path.exists() and await _answers_ping(socket_path):
            return
        now = time.monotonic()
        if is_alive is not None and now >= next_liveness_check:
            if not await is_alive():
                raise ContainerExitedEarly("the container exited before its runner came up")
            next_liveness_check = now + 0.25
        if now > deadline:
            raise BackendError(f"the runner did not come up within {timeout:.0f} s")
        await asyncio.sleep(0.01 if now - started < 2 else 0.1)


async def _answers_ping(socket_path: Path) -> bool:
    try:
        reader, writer = await _open(socket_path)
    except OSError:
        return False
    try:
        writer.write(b'{"op":"ping"}\n')
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        return json.loads(line).get("op") == "pong"
    except (OSError, ValueError, TimeoutError):
        return False
    finally:
        writer.close()


async def execute(socket_path: Path, code: str) -> AsyncIterator[dict[str, Any]]:
    """Run code in the kernel's interpreter; yields output events, then the result."""
    try:
        reader, writer = await _open(socket_path)
    except OSError as exc:
        raise BackendError(f"cannot reach the kernel's runner: {exc}") from None
    try:
        writer.write(json.dumps({"op": "execute", "code": code}).encode() + b"\n")
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                yield {"op": "result", "status": "error", "exit_code": 1, "error": "the kernel's runner went away"}
                return
            event = json.loads(line)
            yield event
            if event.get("op") in ("result", "error"):
                return
    finally:
        writer.close()


async def interrupt(socket_path: Path) -> None:
    reader, writer = await _open(socket_path)
    writer.write(b'{"op":"interrupt"}\n')
    await writer.drain()
    await reader.readline()
    writer.close()
