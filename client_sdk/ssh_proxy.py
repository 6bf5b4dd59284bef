"""``corral ssh-proxy``: OpenSSH's ProxyCommand, stdin/stdout ↔ the session's sshd over the manager.

OpenSSH starts this for every connection, so it is kept light (the ``websockets`` client and the
standard library; not the whole CLI): it starts in about a tenth of a second. Failures are one line
on stderr, which ssh shows; the exit status is non-zero."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from corral.common.errors import CorralError
from corral.common.signing import sign_request

from .config import load_client_config

SERVICE = "sshd"
READ_CHUNK = 256 * 1024
PREFIX = "corral-"
CLOSE_OK = 1000
LOST = "connection to the session was lost"


class ConnectionLost(Exception):
    """The tunnel ended without the service closing it."""


def tunnel_path(ref: str, service: str = SERVICE) -> str:
    return f"/api/v1/sessions/{quote(ref, safe='')}/services/{quote(service, safe='')}/tcp"


def run(host: str, endpoint: str | None = None) -> int:
    ref = host[len(PREFIX):] if host.startswith(PREFIX) else host
    try:
        return asyncio.run(_proxy(ref, endpoint))
    except CorralError as exc:
        _say(exc.detail)
    except OSError as exc:
        _say(f"cannot reach the Corral manager: {exc.strerror or exc}")
    except WebSocketException as exc:
        _say(f"the connection to the session failed: {exc}")
    except KeyboardInterrupt:
        pass
    return 1


async def _proxy(ref: str, endpoint: str | None) -> int:
    config = load_client_config(endpoint=endpoint)
    path = tunnel_path(ref)
    url = config.endpoint.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + path
    headers = sign_request(config.access_key, config.secret_key, "GET", path)
    try:
        socket = await connect(url, additional_headers=headers, max_size=None, compression=None,
                               ping_interval=20, open_timeout=30)
    except InvalidStatus as exc:
        _say(_why_refused(config, path, exc.response.status_code))
        return 1
    async with socket:
        return await _pipe(socket)


async def _pipe(socket: ClientConnection) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_CHUNK)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout.buffer)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)

    async def upload() -> None:
        while data := await reader.read(READ_CHUNK):
            await socket.send(data)
        await socket.send(b"")  # half-close: the service reads EOF and may still answer
        await asyncio.Event().wait()  # download() ends it

    async def download() -> None:
        async for message in socket:
            writer.write(message if isinstance(message, bytes) else message.encode())
            await writer.drain()
        if socket.close_code != CLOSE_OK:  # 1001 or worse: the manager or the agent went away
            raise ConnectionLost(socket.close_reason or LOST)

    tasks = [asyncio.ensure_future(upload()), asyncio.ensure_future(download())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if isinstance(error, ConnectionLost):
                _say(str(error))
                return 1
            if isinstance(error, WebSocketException):
                reason = getattr(getattr(error, "rcvd", None), "reason", "") or LOST
                _say(reason)
                return 1
            if error is not None:
                raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return 0


def _why_refused(config, path: str, status: int) -> str:  # type: ignore[no-untyped-def]
    """A refused handshake carries no reason: the same request without the upgrade says why."""
    request = urllib.request.Request(config.endpoint + path, headers=sign_request(
        config.access_key, config.secret_key, "GET", path))
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - the configured manager
            body = answer.read()
    except urllib.error.HTTPError as error:
        body = error.read()
    except OSError as error:
        return f"the manager refused the tunnel (HTTP {status}), then could not be reached: {error}"
    try:
        return str(json.loads(body).get("detail") or f"the manager refused the tunnel (HTTP {status})")
    except (ValueError, AttributeError):
        return f"the manager refused the tunnel (HTTP {status})"


def _say(message: str) -> None:
    os.write(2, f"corral ssh-proxy: {message}\n".encode())
