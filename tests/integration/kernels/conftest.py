"""What the image tests share: a Docker client, and running a command in an image as a session would."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import aiodocker
import pytest


@pytest.fixture
async def docker(docker_url: str) -> AsyncIterator[aiodocker.Docker]:
    client = aiodocker.Docker(url=docker_url)
    try:
        yield client
    finally:
        await client.close()


async def run_in_image(
    docker: aiodocker.Docker, image: str, command: list[str], *, binds: list[str] | None = None, timeout: float = 180
) -> tuple[int, str]:
    """Runs ``command`` as the session user (uid 1000) with no network; the exit code and the output."""
    container = await docker.containers.create({
        "Image": image, "Cmd": command, "User": "1000:1000",
        "HostConfig": {"NetworkMode": "none", "Binds": binds or []},
    })
    try:
        await container.start()
        outcome = await asyncio.wait_for(container.wait(), timeout)
        return outcome["StatusCode"], "".join(await container.log(stdout=True, stderr=True))
    finally:
        await container.delete(force=True)
