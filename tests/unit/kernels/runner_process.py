"""Runs kernels/runner.py as a host subprocess, as the agent would inside a container."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import corral.kernels

RUNNER_SCRIPT = Path(corral.kernels.__file__).resolve().parent / "runner.py"
# The runner must work with any python3 >= 3.9 an image ships; point this at another one to check.
RUNNER_PYTHON = os.environ.get("CORRAL_TEST_RUNNER_PYTHON", sys.executable)


class RunnerProcess:
    """A runner subprocess with its socket in a short private directory."""

    def __init__(self, process: asyncio.subprocess.Process, socket_path: Path, directory: Path) -> None:
        self.process = process
        self.socket_path = socket_path
        self.directory = directory

    @classmethod
    async def start(
        cls, *arguments: str, env: dict[str, str] | None = None, capture_output: bool = False
    ) -> RunnerProcess:
        # Unix socket paths are limited to ~107 bytes: keep the directory short.
        directory = Path(tempfile.mkdtemp(prefix="crn-", dir="/tmp"))
        socket_path = directory / "runner.sock"
        environment = {**os.environ, "CORRAL_RUNNER_SOCKET": str(socket_path), **(env or {})}
        process = await asyncio.create_subprocess_exec(
            RUNNER_PYTHON, str(RUNNER_SCRIPT), *arguments,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if capture_output else None,
            stderr=asyncio.subprocess.PIPE if capture_output else None,
        )
        return cls(process, socket_path, directory)

    async def wait_for_socket(self, timeout: float = 10.0) -> float:
        """Seconds until the socket path exists."""
        started = time.monotonic()
        while not self.socket_path.exists():
            if self.process.returncode is not None:
                raise AssertionError(f"runner exited with {self.process.returncode} before binding")
            if time.monotonic() - started > timeout:
                raise AssertionError("runner socket did not appear")
            await asyncio.sleep(0.002)
        return time.monotonic() - started

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    async def wait(self, timeout: float = 10.0) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


class RawConnection:
    """Speaks the protocol byte for byte (no client library in between)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, socket_path: Path) -> RawConnection:
        reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=64 * 1024 * 1024)
        return cls(reader, writer)

    async def send_line(self, line: bytes) -> None:
        self.writer.write(line + b"\n")
        await self.writer.drain()

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_line(json.dumps(message).encode())

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        assert line, "runner closed the connection"
        return json.loads(line)

    async def receive_until_result(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        messages = []
        while True:
            message = await self.receive(timeout)
            messages.append(message)
            if message["op"] in ("result", "error"):
                return messages

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
