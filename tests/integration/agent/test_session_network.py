"""A single-node cluster session's bridge network on a real Docker engine: made once by concurrent
kernels, named peers resolve on it, and it goes with the session's last kernel."""
from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import AsyncIterator

import aiodocker
import pytest

from corral.agent.backend.cluster_container import network_settings
from corral.agent.cluster_network import SessionNetworks
from corral.common.cluster import ClusterPeer, ClusterSpec, kernel_name, session_network_name
from corral.kernels.builder import build_image

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

IMAGE = "corral/python:latest"


@pytest.fixture
async def docker(docker_url: str) -> AsyncIterator[aiodocker.Docker]:
    await build_image("python")  # a no-op when the image is there, built from this recipe
    client = aiodocker.Docker(url=docker_url)
    try:
        yield client
    finally:
        await client.close()


def _spec(idx: int) -> ClusterSpec:
    return ClusterSpec(size=2, mode="single-node", idx=idx, peers=[ClusterPeer(name=kernel_name(i), idx=i) for i in (0, 1)])


async def _start_kernel(docker: aiodocker.Docker, networks: SessionNetworks, session_id: str, idx: int) -> str:
    """A container as the agent configures a single-node cluster kernel's network (nothing else of it)."""
    host_network, network = network_settings(_spec(idx), session_id)
    config = {"Image": IMAGE, "Cmd": ["sleep", "300"], "HostConfig": host_network, **network}
    async with networks.joined(session_id):
        container = await docker.containers.create(config, name=f"corral-test-{session_id}-{kernel_name(idx)}")
        await container.start()
    return container.id


async def _exec(container: aiodocker.docker.DockerContainer, command: list[str]) -> str:
    output = b""
    async with (await container.exec(command)).start(detach=False) as stream:
        while (message := await stream.read_out()) is not None:
            output += message.data
    return output.decode()


async def test_the_session_network_is_shared_and_goes_with_the_last_kernel(docker: aiodocker.Docker) -> None:
    session_id = f"it-{uuid.uuid4().hex[:12]}"
    name = session_network_name(session_id)
    networks = SessionNetworks(lambda: docker, f"test-agent-{session_id}")
    containers: list[str] = []
    try:
        assert await asyncio.gather(networks.ensure(session_id), networks.ensure(session_id)) == [name, name]
        assert await SessionNetworks(lambda: docker, networks.agent_id).ensure(session_id) == name  # reused
        listed = [n for n in await docker.networks.list(filters={"name": [name]}) if n["Name"] == name]
        assert len(listed) == 1 and listed[0]["Labels"]["ai.corral.session"] == session_id

        containers = list(await asyncio.gather(*(_start_kernel(docker, networks, session_id, i) for i in (0, 1))))
        main = docker.containers.container(containers[0])
        output = await _exec(main, ["getent", "hosts", "sub1"])
        assert "sub1" in output, output
        assert (await main.show())["Config"]["Hostname"] == "main1"

        await docker.containers.container(containers[0]).delete(force=True)
        await networks.release(session_id)  # sub1 is still attached: refused, quietly
        assert [n for n in await docker.networks.list(filters={"name": [name]}) if n["Name"] == name]
        await docker.containers.container(containers[1]).delete(force=True)
        containers = []
        await networks.release(session_id)
        assert not [n for n in await docker.networks.list(filters={"name": [name]}) if n["Name"] == name]
        await networks.release(session_id)  # gone already: nothing to do
    finally:
        for container_id in containers:
            await docker.containers.container(container_id).delete(force=True)
        for network in await docker.networks.list(filters={"name": [name]}):
            with contextlib.suppress(aiodocker.DockerError):
                await (await docker.networks.get(network["Id"])).delete()
