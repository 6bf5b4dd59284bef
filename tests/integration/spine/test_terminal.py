"""A shell in a session through manager → agent → runner, with the real containers: no port published."""
from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
from typing import AsyncIterator

import aiodocker
import pytest

from corral.common.errors import Conflict, NotFound

from .cluster import LiveCluster

pytestmark = [pytest.mark.docker]


async def read_until(chunks: AsyncIterator[bytes], marker: bytes, timeout: float = 20.0) -> bytes:
    seen = b""
    async with asyncio.timeout(timeout):
        async for chunk in chunks:
            seen += chunk
            if marker in seen:
                return seen
    raise AssertionError(f"{marker!r} never came; got {seen[-500:]!r}")


async def test_terminal_is_a_real_shell_that_survives_a_reconnect(cluster: LiveCluster) -> None:
    client = cluster.client()
    session = await client.create_session(resources={"mem": "128m"})
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)

    async with client.terminal(session.id, rows=30, cols=100) as term:
        chunks = term.output().__aiter__()
        await term.send(b"stty size; export MARK=kept\n")
        await read_until(chunks, b"30 100")
        await term.resize(40, 120)
        await term.send(b"stty size\n")
        await read_until(chunks, b"40 120")
        pty_id = term.pty_id

    async with client.terminal(session.id, attach=pty_id) as again:
        assert again.pty_id == pty_id
        chunks = again.output().__aiter__()
        await again.send(b"echo mark=$MARK\n")
        await read_until(chunks, b"mark=kept")  # the same shell, its state intact
        await again.send(b"exit 3\n")
        async with asyncio.timeout(20):
            async for _ in chunks:
                pass
        assert again.exited and again.exit_code == 3

    info = await client.get_session(session.id)
    assert info.status == "RUNNING"  # the shell ended, the session did not
    async with aiodocker.Docker() as docker:
        container = await docker.containers.get(info.raw["kernels"][0]["container_id"])
        details = await container.show()
    assert not details["HostConfig"].get("PortBindings") and not details["NetworkSettings"].get("Ports")
    await client.destroy_session(session.id)


async def test_terminal_refusals_say_why(cluster: LiveCluster) -> None:
    client = cluster.client()
    session = await client.create_session(resources={"mem": "128m"})
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
    access, secret = await cluster.add_user("mallory")
    with pytest.raises(NotFound):
        async with cluster.client(access, secret).terminal(session.id):
            pass
    await client.destroy_session(session.id)
    await client.wait_for_status(session.id, {"TERMINATED"}, timeout=30)
    with pytest.raises(Conflict, match="not RUNNING"):
        async with client.terminal(session.id):
            pass


async def test_corral_terminal_in_a_real_terminal(cluster: LiveCluster, tmp_path: object) -> None:
    client = cluster.client()
    session = await client.create_session(name="shell", resources={"mem": "128m"})
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
    env = {
        **os.environ, "CORRAL_ENDPOINT": cluster.manager.url, "CORRAL_ACCESS_KEY": cluster.admin_access_key,
        "CORRAL_SECRET_KEY": cluster.admin_secret_key, "CORRAL_CONFIG": str(tmp_path) + "/none.toml",
    }
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "corral.client.cli.main", "terminal", "shell"],
        stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env,
    )
    os.close(slave)
    loop = asyncio.get_running_loop()
    seen = b""

    async def expect(marker: bytes) -> None:
        nonlocal seen
        async with asyncio.timeout(30):
            while marker not in seen:
                seen += await loop.run_in_executor(None, os.read, master, 4096)

    async def prompt() -> None:
        nonlocal seen
        await expect(b"$ ")
        seen = seen[seen.rindex(b"$ ") + 2:]

    await prompt()
    os.write(master, b"echo sum=$((40 + 2))\r")
    await expect(b"sum=42")
    await prompt()
    os.write(master, b"sleep 60; echo slept\r")
    await asyncio.sleep(1)
    os.write(master, b"\x03")  # Ctrl-C interrupts the remote sleep; corral itself carries on
    await prompt()
    assert b"slept" not in seen
    os.write(master, b"exit 5\r")
    try:
        code = await loop.run_in_executor(None, process.wait, 30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"corral terminal did not end; screen: {seen[-300:]!r}; "
                             f"stderr: {process.stderr.read().decode() if process.stderr else ''}") from None
    finally:
        os.close(master)
    assert code == 5, process.stderr.read().decode() if process.stderr else ""
    await client.destroy_session(session.id)
