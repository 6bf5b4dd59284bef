"""The layered ``jupyter`` recipe (base ``python`` + a pip layer), against the real Docker engine."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest

from corral.kernels import pip_layer
from corral.kernels.builder import BuiltImage, build_image, image_exists
from corral.kernels.errors import ImageBuildError
from corral.kernels.recipe import RECIPES_DIR, load_recipe
from corral.kernels.services import http_base_path, parse_services

from .conftest import run_in_image

# A cold build bootstraps the base too (minutes); the suite's default timeout is 300 s.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

TAG = "corral/jupyter:4-py3.11"


@pytest.fixture
async def jupyter_image(docker: aiodocker.Docker) -> BuiltImage:
    return await build_image("jupyter", docker=docker)  # builds once (and the base if needed), then reuses


async def test_the_image_config_and_labels(jupyter_image: BuiltImage, docker: aiodocker.Docker) -> None:
    recipe = load_recipe("jupyter")
    assert jupyter_image.tag == TAG
    assert await image_exists("corral/jupyter:latest", docker=docker)
    config = (await docker.images.inspect(TAG))["Config"]
    labels = config["Labels"]
    assert labels["ai.corral.image"] == "1"
    assert labels["ai.corral.recipe"] == "jupyter"
    assert labels["ai.corral.recipe-digest"] == recipe.digest
    assert labels["ai.corral.services"] == "jupyterlab:http:8888,sshd:tcp:2200"
    assert config["User"] == "1000:1000"
    assert config["WorkingDir"] == "/home/work"
    assert config["Cmd"] == ["/bin/bash"]
    assert not config.get("Entrypoint")
    env = dict(item.partition("=")[::2] for item in config["Env"])
    assert env["PATH"].startswith("/opt/venv/bin:/usr/local/sbin:")
    assert env["HOME"] == "/home/work" and env["LANG"] == "C.UTF-8"
    assert not [name for name in env if name.startswith("PIP_")]


async def test_building_again_reuses_the_image(jupyter_image: BuiltImage, docker: aiodocker.Docker) -> None:
    events = []
    started = time.monotonic()
    again = await build_image("jupyter", docker=docker, progress=events.append)
    assert again.reused and again.image_id == jupyter_image.image_id
    assert time.monotonic() - started < 5
    assert [event.stage for event in events] == ["reused"]


async def test_jupyter_runs_as_the_session_user_without_network(
    jupyter_image: BuiltImage, docker: aiodocker.Docker
) -> None:
    code, output = await run_in_image(
        docker,
        TAG,
        ["sh", "-c", "id -u; command -v jupyter; command -v python3; /opt/venv/bin/jupyter lab --version; "
                     "touch /opt/venv/.writable && echo venv-writable"],
    )
    assert code == 0, output
    lines = output.split()
    assert lines[:3] == ["1000", "/opt/venv/bin/jupyter", "/opt/venv/bin/python3"]
    assert lines[3].startswith("4.")
    assert lines[4] == "venv-writable"  # the session user can pip install more into it


async def test_no_pip_configuration_came_into_the_image(jupyter_image: BuiltImage, docker: aiodocker.Docker) -> None:
    """The host's pip configuration (its index) was only used on the host."""
    code, output = await run_in_image(
        docker,
        TAG,
        ["sh", "-c", "pip config list; echo ---; "
                     "ls -d /etc/pip.conf /etc/xdg/pip /opt/venv/pip.conf /home/work/.config/pip /home/work/.pip "
                     "/root/.config/pip 2>/dev/null; echo ---; ls -A /home/work/.cache 2>/dev/null; echo ---"],
    )
    assert code == 0, output
    config_list, config_files, cache, rest = output.split("---")
    assert config_list.strip() == "", output  # `pip config list` prints nothing
    assert config_files.strip() == "", output
    assert cache.strip() == "", output  # and nothing was cached in the session user's home
    assert rest.strip() == ""


async def test_the_builtin_jupyterlab_service_starts_in_the_image(
    jupyter_image: BuiltImage, docker: aiodocker.Docker
) -> None:
    """kernels/services.py's jupyterlab command (its exact flags) serves its ready path in this image."""
    labels = (await docker.images.inspect(TAG))["Config"]["Labels"]
    service = next(s for s in parse_services(labels) if s.name == "jupyterlab")
    rendered = service.rendered(
        {"base_url": http_base_path("s-test", "jupyterlab"), "home": "/home/work", "runner_dir": "/run/corral"}
    )
    probe = (
        "import json, subprocess, sys, time, urllib.request\n"
        "spec = json.loads(sys.argv[1])\n"
        "server = subprocess.Popen(spec['command'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)\n"
        "url = 'http://127.0.0.1:%d%s' % (spec['port'], spec['ready_path'])\n"
        "deadline = time.monotonic() + 90\n"
        "status = None\n"
        "while status is None and time.monotonic() < deadline and server.poll() is None:\n"
        "    try:\n"
        "        with urllib.request.urlopen(url, timeout=2) as response:\n"
        "            status = response.status, json.load(response)\n"
        "    except OSError:\n"
        "        time.sleep(0.3)\n"
        "server.terminate()\n"
        "log = server.communicate(timeout=30)[0]\n"
        "print(json.dumps({'status': status, 'log': log}))\n"
    )
    code, output = await run_in_image(docker, TAG, ["python3", "-c", probe, json.dumps(rendered.to_json())])
    assert code == 0, output
    result = json.loads(output.strip().splitlines()[-1])
    assert result["status"] is not None, result["log"]
    status, body = result["status"]
    assert status == 200 and "started" in body, result["log"]
    assert "not recognized" not in result["log"] and "Unrecognized" not in result["log"], result["log"]


@pytest.fixture
def recipes_dir() -> AsyncIterator[Path]:
    """A recipes directory with the real python recipe (so its image is reused) and room for test recipes."""
    directory = Path(tempfile.mkdtemp(prefix="corral-recipes-"))
    try:
        shutil.copy(RECIPES_DIR / "python.toml", directory / "python.toml")
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def test_a_labels_only_layer(recipes_dir: Path, docker: aiodocker.Docker) -> None:
    (recipes_dir / "relabel.toml").write_text(
        'name = "relabel"\ntag = "corral/relabel-test:1"\nbase = "python"\n'
        '[labels]\n"ai.corral.services" = ""\n"x.test" = "yes"\n'
    )
    try:
        built = await build_image("relabel", docker=docker, recipes_dir=recipes_dir)
        config = (await docker.images.inspect(built.image_id))["Config"]
        assert config["Labels"]["x.test"] == "yes" and config["Labels"]["ai.corral.services"] == ""
        assert config["Labels"]["ai.corral.recipe"] == "relabel"
        assert "/opt/venv/bin" not in next(item for item in config["Env"] if item.startswith("PATH="))
        assert config["User"] == "1000:1000" and config["Cmd"] == ["/bin/bash"]
    finally:
        await _remove_image(docker, "corral/relabel-test:1")


async def test_a_failing_install_leaves_no_image_and_no_container(
    recipes_dir: Path, docker: aiodocker.Docker, monkeypatch: pytest.MonkeyPatch
) -> None:
    (recipes_dir / "broken.toml").write_text(
        'name = "broken"\ntag = "corral/broken-layer-test:1"\nbase = "python"\npip = ["six"]\n'
    )
    monkeypatch.setattr(pip_layer, "_INSTALL_SCRIPT", "echo 'simulated install failure' >&2; exit 3")
    base = await build_image("python", docker=docker, recipes_dir=recipes_dir)
    containers_before = await _containers_of(docker, base.image_id)
    wheel_dirs_before = set(Path(tempfile.gettempdir()).glob("corral-wheels-*"))
    images_before = {image["Id"] for image in await docker.images.list(all=True)}
    with pytest.raises(ImageBuildError, match="(?s)exit code 3.*simulated install failure"):
        await build_image("broken", docker=docker, recipes_dir=recipes_dir)
    assert not await image_exists("corral/broken-layer-test:1", docker=docker)
    assert {image["Id"] for image in await docker.images.list(all=True)} <= images_before
    assert await _containers_of(docker, base.image_id) <= containers_before
    assert set(Path(tempfile.gettempdir()).glob("corral-wheels-*")) <= wheel_dirs_before


async def _containers_of(docker: aiodocker.Docker, image_id: str) -> set[str]:
    containers = await docker.containers.list(all=True, filters=json.dumps({"ancestor": [image_id]}))
    return {container.id for container in containers}


async def _remove_image(docker: aiodocker.Docker, tag: str) -> None:
    try:
        await docker.images.delete(tag)
    except aiodocker.DockerError:
        pass
