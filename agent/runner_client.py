"""The host side of the runner protocol (see ``kernels/runner.py``): newline-delimited
JSON over the kernel's Unix socket.

One ``RunnerClient`` is one connection; requests carry ids, so an ``interrupt``
or ``ping`` can be sent while an ``execute`` streams. ``wait_until_ready`` and
``execute_events`` are what the agent uses per kernel. This module lives with
the agent, not in ``kernels/``, because only the host speaks it: the runner
needs nothing from here, and nothing here is mounted into containers.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.common.errors import BackendError, NotFound
from corral.kernels import contract

MAX_LINE_BYTES = 64 << 20
# Unix socket paths are limited to 108 bytes (with the NUL); longer ones are reached through the directory.
MAX_SOCKET_PATH = 100

# Readiness polling: the socket usually appears within ~100-300 ms of the container starting,
# but takes seconds when many start at once. Polling (a stat) every 5% of the time waited so far,
# within these bounds, costs at most ~5% in latency and few wake-ups either way.
FAST_POLL_S = 0.01
SLOW_POLL_S = 0.1
POLL_FRACTION_OF_WAIT = 0.05
PING_TIMEOUT_S = 5.0
# How often to ask the engine whether a container that is not up yet died (a Docker inspect each,
# on an engine busy starting containers). An exit event, when the caller has one, ends the wait sooner.
LIVENESS_CHECK_EVERY_S = 2.0
# Stream connections ("connect", "pty") buffer little on this side, so a slow consumer back-pressures the runner.
STREAM_LIMIT_BYTES = 256 << 10
STREAM_OPEN_TIMEOUT_S = 15.0


class RunnerUnavailable(BackendError):
    """The runner's socket did not appear, refused, or closed mid-request."""


class ContainerExitedEarly(BackendError):
    """The container ended before its runner answered (a quick batch job, or a crash)."""


class RunnerRefused(BackendError):
    """The runner answered a ``connect`` or ``pty`` request with ``ok: false`` (its error is the message)."""


class UnknownService(NotFound):
    """The runner has no service of that name (its message lists the ones it has)."""


@dataclass(frozen=True)
class ExecutionResult:
    status: str  # "ok" | "error" | "interrupted"
    exit_code: int
    error: str | None
    stdout: str
    stderr: str


async def open_connection(
    socket_path: str | os.PathLike[str], *, limit: int = MAX_LINE_BYTES
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    path = Path(socket_path)
    if len(str(path)) <= MAX_SOCKET_PATH:
        return await asyncio.open_unix_connection(str(path), limit=limit)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        return await asyncio.open_unix_connection(f"/proc/self/fd/{fd}/{path.name}", limit=limit)
    finally:
        os.close(fd)


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
                return cls(*await open_connection(socket_path))
            except (FileNotFoundError, ConnectionRefusedError) as error:
                last_error = error
            if time.monotonic() >= deadline:
                raise RunnerUnavailable(f"runner socket {socket_path} not ready after {timeout} s: {last_error}")
            await asyncio.sleep(FAST_POLL_S)

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

    async def services(self) -> list[dict[str, Any]]:
        answer = await self._request_one({"op": "services"})
        return list(answer.get("services") or [])

    async def start_service(self, name: str, wait_s: float) -> dict[str, Any]:
        """Starts the service unless it is up; waits up to ``wait_s`` for ready or failed."""
        return await self._service_op("service_start", name, wait_s)

    async def stop_service(self, name: str) -> dict[str, Any]:
        return await self._service_op("service_stop", name)

    async def _service_op(self, op: str, name: str, wait_s: float = 0) -> dict[str, Any]:
        answer = await self._request_one({"op": op, "name": name, "wait_s": wait_s})
        if answer.get("op") == "error":
            raise UnknownService(str(answer.get("error")))
        return dict(answer["service"])

    async def execute_stream(self, code: str) -> AsyncIterator[dict[str, Any]]:
        """Yields ``output`` messages as they arrive, then the ``result`` (or ``error``) message.

        Ends without a result if the runner goes away."""
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


# -- what the agent uses per kernel ----------------------------------------------


async def wait_until_ready(
    socket_path: Path,
    timeout: float,
    is_alive: Callable[[], Awaitable[bool]] | None = None,
    exited: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Polls for the runner's socket and pings it; returns its pong (pid, python, user...). Raises ``ContainerExitedEarly`` at the next
    poll once ``exited`` is set, or when ``is_alive`` (asked every ``LIVENESS_CHECK_EVERY_S``) says no.

    The runner binds its socket atomically (it is listening once the path
    exists), so the poll is a cheap ``stat``.
    """
    started = time.monotonic()
    deadline = started + timeout
    next_liveness_check = started + LIVENESS_CHECK_EVERY_S
    while True:
        pong = await _answers_ping(socket_path) if socket_path.exists() else None
        if pong is not None:
            return pong
        if exited is not None and exited.is_set():
            raise ContainerExitedEarly("the container exited before its runner came up")
        now = time.monotonic()
        if is_alive is not None and now >= next_liveness_check:
            if not await is_alive():
                raise ContainerExitedEarly("the container exited before its runner came up")
            next_liveness_check = time.monotonic() + LIVENESS_CHECK_EVERY_S
        if now > deadline:
            raise BackendError(f"the runner did not come up within {timeout:.0f} s")
        await asyncio.sleep(min(max((now - started) * POLL_FRACTION_OF_WAIT, FAST_POLL_S), SLOW_POLL_S))


async def _answers_ping(socket_path: Path) -> dict[str, Any] | None:
    try:
        client = RunnerClient(*await open_connection(socket_path))
    except OSError:
        return None
    try:
        pong = await asyncio.wait_for(client.ping(), PING_TIMEOUT_S)
        return pong if pong.get("op") == "pong" else None
    except (RunnerUnavailable, TimeoutError):
        return None
    finally:
        await client.close()


async def execute_events(socket_path: Path, code: str) -> AsyncIterator[dict[str, Any]]:
    """Runs code on a connection of its own; yields the runner's messages without their
    request ids, and always ends with a ``result`` (made up here if the runner went away)."""
    try:
        client = RunnerClient(*await open_connection(socket_path))
    except OSError as exc:
        raise BackendError(f"cannot reach the kernel's runner: {exc}") from None
    try:
        async for message in client.execute_stream(code):
            message.pop("id", None)
            yield message
            if message.get("op") in ("result", "error"):
                return
        yield {"op": "result", "status": "error", "exit_code": 1, "error": "the kernel's runner went away"}
    finally:
        await client.close()


# -- streams: TCP pipes and terminals into the container ---------------------------------


async def _open_stream(
    socket_path: str | os.PathLike[str], request: dict[str, Any]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]:
    """Sends a stream op as the first line of a new connection; returns it with the runner's ok answer."""
    try:
        reader, writer = await open_connection(socket_path, limit=STREAM_LIMIT_BYTES)
    except OSError as exc:
        raise RunnerUnavailable(f"cannot reach the kernel's runner: {exc}") from None
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), STREAM_OPEN_TIMEOUT_S)
        if not line:
            raise RunnerUnavailable(f"the runner closed the connection before answering {request['op']}")
        answer = json.loads(line)
    except (ConnectionError, OSError, TimeoutError, ValueError) as exc:
        writer.close()
        raise RunnerUnavailable(f"the runner did not answer {request['op']}: {exc!r}") from None
    except BaseException:
        writer.close()
        raise
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        writer.close()
        error = answer.get("error") if isinstance(answer, dict) else None
        raise RunnerRefused(error or f"the runner refused {request['op']}: {answer!r}")
    return reader, writer, answer


async def connect_service(
    fd_socket_path: str | os.PathLike[str], name: str, timeout: float
) -> tuple[socket.socket | None, dict[str, Any]]:
    """A TCP connection to the session's service, made by the runner inside the container and handed
    over as a descriptor (``kernels/runner_services.py``), so its bytes skip the runner. None and the
    runner's answer (the service's state, an error) when the service is not ready."""
    loop = asyncio.get_running_loop()
    channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    channel.setblocking(False)
    try:
        try:
            await loop.sock_connect(channel, os.fspath(fd_socket_path))
            await loop.sock_sendall(channel, json.dumps({"service": name}).encode() + b"\n")
            await asyncio.wait_for(_readable(loop, channel), timeout)
            message, fds, _, _ = socket.recv_fds(channel, 1 << 16, 1)
        except (OSError, TimeoutError) as exc:
            raise RunnerUnavailable(f"the runner did not hand over a connection to {name}: {exc!r}") from None
        connections = [socket.socket(fileno=fd) for fd in fds]
        try:
            answer = json.loads(message.split(b"\n", 1)[0]) if message else {}
        except ValueError:
            answer = {}
        if not isinstance(answer, dict) or not answer.get("ok") or not connections:
            for connection in connections:
                connection.close()
            return None, answer if isinstance(answer, dict) else {}
        return connections[0], answer
    finally:
        channel.close()


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready = loop.create_future()
    loop.add_reader(sock.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


async def open_tcp_pipe(
    socket_path: str | os.PathLike[str], port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A byte pipe to ``127.0.0.1:port`` inside the kernel's container (no published port needed).

    ``writer.write_eof()`` half-closes towards the container's server; the reader's EOF is its
    half-close. Raises ``RunnerRefused`` when the runner cannot connect (``connection refused: ...``)."""
    reader, writer, _ = await _open_stream(socket_path, {"op": "connect", "port": port})
    return reader, writer


class PtyConnection:
    """A terminal in the kernel's container: frames per ``corral.kernels.contract`` (``PTY_FRAME_*``).

    ``read_frame`` yields ``(type, payload)``: DATA (output bytes), PONG, EXIT (JSON
    ``{"code": N}``; the runner then closes), ERROR (JSON ``{"error": ...}``). PINGs
    from the runner are answered here and not returned."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pty_id: str) -> None:
        self.reader = reader
        self.writer = writer
        self.pty_id = pty_id

    async def _send(self, frame: bytes) -> None:
        try:
            self.writer.write(frame)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise RunnerUnavailable(f"the pty connection is closed: {exc!r}") from None

    async def send_input(self, data: bytes) -> None:
        """Keystrokes; waits while the terminal does not take them (back-pressure)."""
        if data:
            await self._send(contract.encode_data_frames(data))

    async def resize(self, rows: int, cols: int) -> None:
        await self._send(contract.encode_json_frame(contract.PTY_FRAME_RESIZE, {"rows": rows, "cols": cols}))

    async def ping(self, payload: bytes = b"") -> None:
        """Sends a PING; its PONG (same payload) comes through ``read_frame``."""
        await self._send(contract.encode_frame(contract.PTY_FRAME_PING, payload))

    async def read_frame(self) -> tuple[int, bytes]:
        """The next frame; raises ``RunnerUnavailable`` once the connection ends (after EXIT,
        on a take-over by another client, or when the runner goes away)."""
        while True:
            try:
                frame = await contract.read_frame(self.reader)
            except (asyncio.IncompleteReadError, contract.FrameError, ConnectionError, OSError) as exc:
                raise RunnerUnavailable(f"the pty connection broke: {exc!r}") from None
            if frame is None:
                raise RunnerUnavailable("the runner closed the pty connection")
            if frame[0] == contract.PTY_FRAME_PING:
                await self._send(contract.encode_frame(contract.PTY_FRAME_PONG, frame[1]))
                continue
            return frame

    async def close(self) -> None:
        """Detaches: the shell keeps running for the runner's grace period (re-attach by ``pty_id``)."""
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    async def __aenter__(self) -> PtyConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def open_pty(
    socket_path: str | os.PathLike[str],
    rows: int,
    cols: int,
    attach: str | None = None,
    command: list[str] | None = None,
) -> PtyConnection:
    """Starts a shell (``command``, default the container user's shell) on a new terminal, or
    re-attaches to the live one ``attach`` names (its recent output is replayed first).
    Raises ``RunnerRefused`` for an unknown or ended pty, or a command that cannot start."""
    request = {"op": "pty", "rows": rows, "cols": cols, "attach": attach, "command": command}
    reader, writer, answer = await _open_stream(socket_path, request)
    return PtyConnection(reader, writer, answer["pty"])
