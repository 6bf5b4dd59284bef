"""Async client for the runner's Unix-socket protocol (see ``runner.py``).

One ``RunnerClient`` is one connection; requests carry ids, so an
``interrupt`` or ``ping`` can be sent while an ``execute`` streams.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

MAX_LINE_BYTES = 64 * 1024 * 1024


class RunnerUnavailable(ConnectionError):
    """The runner's socket did not appear, refused, or closed mid-request."""


@dataclass(frozen=True)
class ExecutionResult:
    status: str  # "ok" | "error" | "interrupted"
    exit_code: int
    error: str | None
    stdout: str
    stderr: str


class RunnerClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._queues: dict[int, asyncio.Queue[dict[str, Any] | None]] = {}
        self._disconnected = False
        self._dispatcher = asyncio.create_task(self._dispatch())

    @classmethod
    async def connect(cls, socket_path: str | os.PathLike[str], *, timeout: float = 10.0) -> RunnerClient:
        """Waits up to ``timeout`` seconds for the socket to appear and accept."""
        deadline = time.monotonic() + timeout
        last_error: OSError | None = None
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=MAX_LINE_BYTES)
                return cls(reader, writer)
            except (FileNotFoundError, ConnectionRefusedError) as error:
                last_error = error
            if time.monotonic() >= deadline:
                raise RunnerUnavailable(f"runner socket {socket_path} not ready after {timeout} s: {last_error}")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        self._dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._dispatcher

    async def __aenter__(self) -> RunnerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def ping(self) -> dict[str, Any]:
        return await self._request_one({"op": "ping"})

    async def interrupt(self) -> dict[str, Any]:
        return await self._request_one({"op": "interrupt"})

    async def shutdown(self) -> dict[str, Any]:
        return await self._request_one({"op": "shutdown"})

    async def execute_stream(self, code: str) -> AsyncIterator[dict[str, Any]]:
        """Yields ``output`` messages as they arrive, then the ``result`` message."""
        async for message in self._request({"op": "execute", "code": code}):
            yield message
            if message.get("op") in ("result", "error"):
                return

    async def execute(
        self, code: str, *, on_output: Callable[[str, str], None] | None = None
    ) -> ExecutionResult:
        """Runs ``code``; ``on_output(stream, text)`` sees output live."""
        collected: dict[str, list[str]] = {"stdout": [], "stderr": []}
        async for message in self.execute_stream(code):
            if message["op"] == "output":
                collected[message["stream"]].append(message["data"])
                if on_output is not None:
                    on_output(message["stream"], message["data"])
            elif message["op"] == "result":
                return ExecutionResult(
                    status=message["status"],
                    exit_code=int(message["exit_code"]),
                    error=message.get("error"),
                    stdout="".join(collected["stdout"]),
                    stderr="".join(collected["stderr"]),
                )
            else:
                raise RunnerUnavailable(f"runner refused execute: {message.get('error')}")
        raise RunnerUnavailable("runner closed the connection before the result")

    # -- plumbing -------------------------------------------------------------

    async def _request_one(self, request: dict[str, Any]) -> dict[str, Any]:
        async for message in self._request(request):
            return message
        raise RunnerUnavailable(f"runner closed the connection before answering {request['op']}")

    async def _request(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        if self._disconnected:
            raise RunnerUnavailable("the runner connection is closed")
        request_id = next(self._ids)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._queues[request_id] = queue
        try:
            self._writer.write(json.dumps({**request, "id": request_id}).encode() + b"\n")
            await self._writer.drain()
            while (message := await queue.get()) is not None:
                yield message
        finally:
            self._queues.pop(request_id, None)

    async def _dispatch(self) -> None:
        try:
            async for line in self._reader:
                message = json.loads(line)
                queue = self._queues.get(message.get("id"))
                if queue is not None:
                    queue.put_nowait(message)
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            self._disconnected = True
            for queue in self._queues.values():
                queue.put_nowait(None)

