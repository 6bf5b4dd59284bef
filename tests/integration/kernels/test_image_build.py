"""The base image and the container contract, against the real Docker engine."""
from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from corral.kernels import builder
from corral.kernels.builder import BuiltImage, build_image, image_exists
from corral.kernels.contract import batch_command, bind_mounts, interactive_command, prepare_runner_dir
from corral.kernels.errors import ImageBuildError
from corral.agent.runner_client import RunnerClient

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BASE_TAG = "corral/python:3.11-bookworm"


@pytest.fixture
async def base_image(docker: aiodocker.Docker) -> BuiltImage:
    return await build_image("python", docker=docker)  # builds once, then reuses


@pytest.fixture
def runner_dir() -> AsyncIterator[Path]:
    # Short path: Unix socket paths are limited to ~107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="crk-", dir="/tmp"))
    try:
        yield directory / "run"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def contract_container_config(image: str, command: list[str], runner_dir: Path) -> dict[str, Any]:
    """What the agent gives Docker (see agent/backend/container_config.py), minus limits."""
    return {
        "Image": image,
        "Cmd": command,
        "Env": ["CORRAL_SESSION_ID=s-test", "CORRAL_KERNEL_ID=k-test"],
        "User": "1000:1000",
        "HostConfig": {
            "Binds": bind_mounts(runner_dir),
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "PidsLimit": 256,
        },
    }


@pytest.fixture
async def start_container(docker: aiodocker.Docker) -> AsyncIterator[Any]:
    containers: list[aiodocker.containers.DockerContainer] = []

    async def start(config: dict[str, Any]) -> aiodocker.containers.DockerContainer:
        container = await docker.containers.create(config)
        containers.append(container)
        await container.start()
        return container

    try:
        yield start
    finally:
        for container in containers:
            try:
                await container.delete(force=True)
            except aiodocker.DockerError:
                pass


async def test_base_image_config_and_labels(base_image: BuiltImage, docker: aiodocker.Docker) -> None:
    assert base_image.tag == BASE_TAG
    assert await image_exists(BASE_TAG, docker=docker)
    assert await image_exists("corral/python:latest", docker=docker)
    inspected = await docker.images.inspect(BASE_TAG)
    config = inspected["Config"]
    assert config["User"] == "1000:1000"
    assert config["WorkingDir"] == "/home/work"
    assert "LANG=C.UTF-8" in config["Env"] and "HOME=/home/work" in config["Env"]
    labels = config["Labels"]
    assert labels["ai.corral.image"] == "1"
    assert labels["ai.corral.recipe"] == "python"
    assert labels["ai.corral.services"] == "sshd:tcp:2200"
    assert labels["ai.corral.recipe-digest"]


async def test_building_again_reuses_the_image(base_image: BuiltImage, docker: aiodocker.Docker) -> None:
    events = []
    started = time.monotonic()
    again = await build_image("python", docker=docker, progress=events.append)
    assert again.reused
    assert again.image_id == base_image.image_id
    assert time.monotonic() - started < 5
    assert [event.stage for event in events] == ["reused"]


async def test_interactive_container_runs_code_as_the_session_user(
    base_image: BuiltImage, runner_dir: Path, start_container: Any
) -> None:
    socket_path = prepare_runner_dir(runner_dir)
    container = await start_container(contract_container_config(base_image.tag, interactive_command(), runner_dir))
    client = await RunnerClient.connect(socket_path, timeout=20)
    try:
        pong = await client.ping()
        assert pong["pid"] == 1
        assert pong["python"].startswith("3.11.")
        assert (await client.execute("print(1+1)")).stdout == "2\n"
        probe = await client.execute(
            "import os, pwd\n"
            "print(os.getuid(), pwd.getpwuid(os.getuid()).pw_name, os.getcwd(), os.environ['HOME'])\n"
            "print(os.environ['CORRAL_KERNEL_ID'])\n"
            "open('/home/work/note.txt', 'w').write('home is writable')\n"
            "try:\n"
            "    open('/opt/corral/x', 'w')\n"
            "except OSError as error:\n"
            "    print('opt read-only:', error.errno)\n"
        )
        assert probe.status == "ok", probe.error
        assert probe.stdout.splitlines() == ["1000 work /home/work /home/work", "k-test", "opt read-only: 30"]
    finally:
        await client.close()
    started = time.monotonic()
    await container.stop(t=10)
    assert time.monotonic() - started < 3, "the runner must exit promptly on SIGTERM"
    assert (await container.show())["State"]["ExitCode"] == 0


async def test_batch_container_exits_with_the_commands_code(
    base_image: BuiltImage, runner_dir: Path, start_container: Any
) -> None:
    prepare_runner_dir(runner_dir)
    container = await start_container(
        contract_container_config(base_image.tag, batch_command("echo hello from batch; exit 3"), runner_dir)
    )
    outcome = await asyncio.wait_for(container.wait(), 30)
    assert outcome["StatusCode"] == 3
    assert "".join(await container.log(stdout=True, stderr=True)) == "hello from batch\n"


async def test_a_failing_bootstrap_leaves_no_image(
    base_image: BuiltImage, docker: aiodocker.Docker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mmdebstrap writes a complete tarball but fails: the import must be aborted."""

    def fake_mmdebstrap(executable: str, recipe: Any, mirrors: list[str]) -> list[str]:
        return ["sh", "-c", "tar -c -C /etc hostname; echo 'E: simulated failure' >&2; exit 2"]

    monkeypatch.setattr(builder, "_mmdebstrap_command", fake_mmdebstrap)
    images_before = {image["Id"] for image in await docker.images.list(all=True)}
    tag = "corral/failing-bootstrap-test:1"
    with pytest.raises(ImageBuildError, match="(?s)exited with code 2.*simulated failure"):
        await build_image("python", tag=tag, docker=docker)
    assert not await image_exists(tag, docker=docker)
    images_after = {image["Id"] for image in await docker.images.list(all=True)}
    assert images_after <= images_before


async def test_a_socket_dir_the_session_user_cannot_write_is_a_clear_error(
    base_image: BuiltImage, runner_dir: Path, start_container: Any
) -> None:
    runner_dir.mkdir(mode=0o755)  # root-owned and not opened up with prepare_runner_dir()
    container = await start_container(contract_container_config(base_image.tag, interactive_command(), runner_dir))
    outcome = await asyncio.wait_for(container.wait(), 30)
    assert outcome["StatusCode"] == 1
    logs = "".join(await container.log(stdout=True, stderr=True))
    assert "cannot listen on /run/corral/runner.sock: Permission denied (uid 1000" in logs
