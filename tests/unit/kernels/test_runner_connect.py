"""The runner's "connect" op: a byte pipe to 127.0.0.1:PORT through the runner's Unix socket.

The test's own loopback stands for the container's: the runner runs on the host here."""
from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import Awaitable, Callable

import pytest

from corral.agent.runner_client import RunnerRefused, open_tcp_pipe

from .runner_process import RawConnection, RunnerProcess

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echoes until EOF, then half-closes back."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write_eof()
    await writer.drain()
    writer.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_bytes_round_trip(runner: RunnerProcess) -> None:
    server, port = await serve(echo)
    async with server:
        reader, writer = await open_tcp_pipe(runner.socket_path, port)
        for message in (b"hello\n", b"\x00\xff binary \r\n", b"x" * 100_000):
            writer.write(message)
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(len(message)), 5) == message
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_32_mib_each_way_arrive_intact(runner: RunnerProcess) -> None:
    payload = os.urandom(32 << 20)
    received_by_server = hashlib.sha256()

    async def hashing_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1 << 16):
            received_by_server.update(data)
            writer.write(data)
            await writer.drain()
        writer.close()

    server, port = await serve(hashing_echo)
    async with server:
        reader, writer = await open_tcp_pipe(runner.socket_path, port)

        async def send() -> None:
            view = memoryview(payload)
            for start in range(0, len(view), 1 << 20):
                writer.write(view[start:start + (1 << 20)])
                await writer.drain()
            writer.write_eof()

        async def receive() -> tuple[str, int]:
            digest, size = hashlib.sha256(), 0
            while data := await reader.read(1 << 16):
                digest.update(data)
                size += len(data)
            return digest.hexdigest(), size

        _, (echoed_digest, echoed_size) = await asyncio.wait_for(asyncio.gather(send(), receive()), 60)
        writer.close()
    expected = hashlib.sha256(payload).hexdigest()
    assert received_by_server.hexdigest() == expected
    assert (echoed_size, echoed_digest) == (len(payload), expected)


async def test_half_close_towards_the_server(runner: RunnerProcess) -> None:
    """The client's EOF reaches the server, which still answers afterwards."""

    async def count_then_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # to EOF
        writer.write(b"got %d bytes" % len(data))
        writer.close()

    server, port = await serve(count_then_answer)
    async with server:
        reader, writer = await open_tcp_pipe(runner.socket_path, port)
        writer.write(b"a" * 1000)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b"got 1000 bytes"
        writer.close()


async def test_half_close_towards_the_client(runner: RunnerProcess) -> None:
    """The server's EOF reaches the client, which can still send afterwards."""
    late = asyncio.get_running_loop().create_future()

    async def greet_then_listen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        writer.write_eof()
        late.set_result(await reader.read())
        writer.close()

    server, port = await serve(greet_then_listen)
    async with server:
        reader, writer = await open_tcp_pipe(runner.socket_path, port)
        assert await asyncio.wait_for(reader.read(), 5) == b"hello"
        writer.write(b"still here")
        writer.write_eof()
        assert await asyncio.wait_for(late, 5) == b"still here"
        writer.close()


async def test_a_closed_port_is_refused_readably(runner: RunnerProcess) -> None:
    port = free_port()
    with pytest.raises(RunnerRefused, match=rf"^connection refused: 127\.0\.0\.1:{port}$"):
        await open_tcp_pipe(runner.socket_path, port)


@pytest.mark.parametrize("port", [0, 65536, -1, "80", 8.5, True, None])
async def test_a_bad_port_is_an_error(runner: RunnerProcess, port: object) -> None:
    connection = await RawConnection.open(runner.socket_path)
    await connection.send({"op": "connect", "port": port, "id": 7})
    answer = await connection.receive()
    assert answer["ok"] is False and answer["id"] == 7
    assert "1..65535" in answer["error"]
    assert await asyncio.wait_for(connection.reader.read(), 5) == b""  # then it closes
    await connection.close()


async def test_connect_only_as_the_first_request(runner: RunnerProcess) -> None:
    connection = await RawConnection.open(runner.socket_path)
    await connection.send({"op": "ping"})
    assert (await connection.receive())["op"] == "pong"
    await connection.send({"op": "connect", "port": 80})
    answer = await connection.receive()
    assert answer == {"op": "error", "error": "connect must be the first request on a new connection"}
    await connection.send({"op": "ping"})
    assert (await connection.receive())["op"] == "pong"  # still a request connection
    await connection.close()


async def test_the_pipe_closes_when_the_server_goes_away(runner: RunnerProcess) -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server, port = await serve(close_at_once)
    async with server:
        reader, writer = await open_tcp_pipe(runner.socket_path, port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
