"""Bring your own environment: a Dockerfile ``FROM corral/python``, and users' own recipe files, for real."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiodocker
import pytest
from click.testing import CliRunner

from corral.client.cli.main import main
from corral.kernels.builder import build_image, image_exists
from corral.kernels.dockerfile_build import build_dockerfile, default_tag
from corral.kernels.errors import ImageBuildError, InvalidRecipe

from .conftest import run_in_image

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

TAG = "corral-test/byo-dockerfile:1"


@pytest.fixture
async def python_image(docker: aiodocker.Docker) -> str:
    return (await build_image("python", docker=docker)).tag


async def _remove(docker: aiodocker.Docker, *tags: str) -> None:
    for tag in tags:
        try:
            await docker.images.delete(tag, force=True)
        except aiodocker.DockerError:
            pass


async def test_a_dockerfile_from_the_python_image(tmp_path: Path, python_image: str, docker: aiodocker.Docker) -> None:
    (tmp_path / "hello.txt").write_text("hello from the context\n")
    (tmp_path / "secret.key").write_text("left out\n")
    (tmp_path / ".dockerignore").write_text("*.key\n")
    (tmp_path / "Dockerfile").write_text(
        f"FROM {python_image}\nCOPY hello.txt /home/work/hello.txt\nLABEL x.mine=yes\n"
        'RUN ls /home/work > /tmp/listing && echo "built" > /tmp/built\n'
    )
    events = []
    try:
        built = await build_dockerfile(tmp_path / "Dockerfile", tag=TAG, docker=docker, progress=events.append)
        assert built.tag == TAG and not built.reused
        config = (await docker.images.inspect(TAG))["Config"]
        labels = config["Labels"]
        assert labels["ai.corral.image"] == "1" and labels["ai.corral.recipe"] == "dockerfile:Dockerfile"
        assert labels["ai.corral.recipe-digest"]
        assert labels["ai.corral.services"] == "sshd:tcp:2200"  # the base's own labels are kept
        assert labels["x.mine"] == "yes"
        assert labels["ai.corral.python"].startswith("3.11.") and labels["ai.corral.frameworks"] == ""
        assert config["User"] == "1000:1000" and config["Cmd"] == ["/bin/bash"]  # the base's config
        stages = {event.stage for event in events}
        assert {"installing", "customizing", "tagging", "done"} <= stages
        assert any("COPY hello.txt" in event.message for event in events)  # the build's own steps as progress
        code, output = await run_in_image(docker, TAG, ["sh", "-c", "cat /home/work/hello.txt; ls /home/work; id -u"])
        assert code == 0 and "hello from the context" in output and "secret.key" not in output, output
        # Rebuilding the same Dockerfile is quick (the engine's cache) and gives the same content.
        again = await build_dockerfile(tmp_path / "Dockerfile", tag=TAG, docker=docker)
        assert again.labels == built.labels
    finally:
        await _remove(docker, TAG)


async def test_a_failing_dockerfile_is_one_clear_error_and_no_image(
    tmp_path: Path, python_image: str, docker: aiodocker.Docker
) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {python_image}\nRUN echo 'about to fail' && exit 3\n")
    with pytest.raises(ImageBuildError, match="(?s)returned a non-zero code: 3.*about to fail"):
        await build_dockerfile(tmp_path / "Dockerfile", tag="corral-test/byo-broken:1", docker=docker)
    assert not await image_exists("corral-test/byo-broken:1", docker=docker)
    with pytest.raises(InvalidRecipe, match="no Dockerfile at"):
        await build_dockerfile(tmp_path / "missing" / "Dockerfile", docker=docker)
    with pytest.raises(InvalidRecipe, match="not a valid image tag"):
        await build_dockerfile(tmp_path / "Dockerfile", tag="Bad Tag!", docker=docker)


def test_default_tags() -> None:
    assert default_tag(Path("/x/my-env/Dockerfile")) == "corral/my-env:latest"
    assert default_tag(Path("/x/y/GPU.Dockerfile")) == "corral/gpu:latest"
    assert default_tag(Path("/x/y/Dockerfile.train")) == "corral/train:latest"


def test_the_cli_builds_a_dockerfile_and_a_recipe_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_url: str
) -> None:
    asyncio.run(_build_python(docker_url))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("DOCKER_HOST", docker_url)
    runner = CliRunner()
    project = tmp_path / "my-env"
    project.mkdir()
    (project / "Dockerfile").write_text("FROM corral/python:latest\nLABEL x.cli=yes\n")
    (project / "my-recipe.toml").write_text(
        'name = "my-recipe"\ntag = "corral-test/byo-recipe:1"\nbase = "python"\n[labels]\n"x.recipe" = "file"\n'
    )
    user_dir = tmp_path / "config" / "corral" / "recipes"
    user_dir.mkdir(parents=True)
    (user_dir / "by-name.toml").write_text('name = "by-name"\ntag = "corral-test/byo-by-name:1"\nbase = "python"\n')
    tags = ["corral-test/byo-cli:1", "corral-test/byo-recipe:1", "corral-test/byo-by-name:1"]
    try:
        result = runner.invoke(main, ["image", "build", "--dockerfile", str(project / "Dockerfile"), "--tag", tags[0]])
        assert result.exit_code == 0, result.output
        assert f"built {tags[0]}" in result.stdout
        monkeypatch.chdir(project)
        result = runner.invoke(main, ["image", "build", "./my-recipe.toml"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(main, ["image", "build", "by-name"])  # found in ~/.config/corral/recipes
        assert result.exit_code == 0, result.output
        labels = asyncio.run(_labels(docker_url, tags))
        assert labels[0]["x.cli"] == "yes" and labels[0]["ai.corral.image"] == "1"
        assert labels[1]["x.recipe"] == "file" and labels[1]["ai.corral.recipe"] == "my-recipe"
        assert labels[2]["ai.corral.recipe"] == "by-name" and labels[2]["ai.corral.python"].startswith("3.11.")
        # Bad input: one readable error line, non-zero exit.
        for args, message in (
            (["image", "build", "python", "--dockerfile", "Dockerfile"], "error: give either a RECIPE or --dockerfile"),
            (["image", "build", "--dockerfile", "nope/Dockerfile"], "error: no Dockerfile at 'nope/Dockerfile'"),
            (["image", "build", "./nope.toml"], "error: no recipe file 'nope.toml'"),
            (["image", "build", "pytorch-2.14", "--variant", "cpu"], "error: recipe 'pytorch-2.14' has no 'cpu' variant"),
        ):
            result = runner.invoke(main, args)
            assert result.exit_code != 0, (args, result.output)
            assert result.stderr.strip().splitlines() == [result.stderr.strip()] and result.stderr.startswith(message), (
                args, result.stderr,
            )
    finally:
        asyncio.run(_remove_all(docker_url, tags))


async def _build_python(docker_url: str) -> None:
    async with aiodocker.Docker(url=docker_url) as client:
        await build_image("python", docker=client)


async def _labels(docker_url: str, tags: list[str]) -> list[dict[str, str]]:
    async with aiodocker.Docker(url=docker_url) as client:
        return [(await client.images.inspect(tag))["Config"]["Labels"] for tag in tags]


async def _remove_all(docker_url: str, tags: list[str]) -> None:
    async with aiodocker.Docker(url=docker_url) as client:
        await _remove(client, *tags)


def test_json_round_trip_of_labels_is_plain() -> None:
    # Labels are plain strings: what `corral image ls --json` shows is what the engine stores.
    assert json.loads(json.dumps({"ai.corral.frameworks": "torch 2.13.0+cpu"}))["ai.corral.frameworks"]
