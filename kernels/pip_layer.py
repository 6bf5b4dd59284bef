"""The pip layer of a recipe: PyPI packages in a virtualenv at ``/opt/venv``, committed on top of an image.

1. The base image's Python version and glibc are read with a throwaway
   container (no network); ``SUITE_PYTHON`` is the fallback.
2. The HOST's pip downloads wheels for that interpreter and platform into a
   temporary directory (``pip download --only-binary=:all: --python-version
   ... --platform manylinux_...``), so every package comes through this
   machine's pip configuration (index, certificates, proxy, constraints);
   none of that configuration goes into the image.
3. A container from the base image (root, ``NetworkMode: none``, the wheels
   bind-mounted read-only at ``/wheels``) creates the venv, installs from
   ``/wheels`` only (``--no-index``) and gives the venv to the session user,
   so users can ``pip install`` more into it (or ``pip install --user``: the
   venv is made with ``--system-site-packages``, so ``~/.local`` is seen).
4. The container is committed with ``ENV PATH=/opt/venv/bin:<base PATH>``,
   the base's USER / WORKDIR / CMD / ENTRYPOINT and the recipe's labels;
   the container and the wheels are removed whatever happens.

A recipe without ``pip`` (only labels) gets an empty layer with the new labels.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker

from corral.kernels.build_progress import BuildProgress, ProgressCallback
from corral.kernels.docker_import import dockerfile_changes
from corral.kernels.errors import ImageBuildError
from corral.kernels.recipe import Recipe

VENV_DIR = "/opt/venv"
WHEELS_MOUNT = "/wheels"  # Docker leaves an empty mountpoint directory of this name in the layer
DEFAULT_OWNER = "1000:1000"


@dataclass(frozen=True)
class SuitePython:
    version: str  # "3.11"
    glibc: tuple[int, int]  # (2, 36)


# What each suite's system Python is, when the image itself cannot be asked.
SUITE_PYTHON: dict[str, SuitePython] = {
    "bookworm": SuitePython("3.11", (2, 36)),
}

_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # an image without ENV PATH
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}
_OLDEST_MANYLINUX_MINOR = 17  # manylinux_2_17 == manylinux2014
_LOG_TAIL_LINES = 30
_TERMINATE_GRACE_SECONDS = 10.0
_PROBE_SCRIPT = (
    "import json, platform, sys; "
    "print(json.dumps({'python': '%d.%d' % sys.version_info[:2], 'libc': platform.libc_ver()}))"
)
# Runs as root in the layer container, requirements as "$@"; nothing here reaches the image's config.
_INSTALL_SCRIPT = f"""set -e
export HOME=/root PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
cd /
owner="$1"; shift
# --system-site-packages: the user site (~/.local) is then visible, so `pip install --user` works too
# (the base image's dist-packages are empty).
if [ ! -x {VENV_DIR}/bin/python ]; then python3 -m venv --system-site-packages {VENV_DIR}; fi
{VENV_DIR}/bin/python -m pip install --no-index --find-links {WHEELS_MOUNT} --no-cache-dir --progress-bar off -- "$@"
chown -R "$owner" {VENV_DIR}
"""


async def add_pip_layer(
    client: aiodocker.Docker,
    base_image: str,
    recipe: Recipe,
    report: ProgressCallback,
    *,
    owner: str = DEFAULT_OWNER,
    pip_executable: str = sys.executable,
) -> str:
    """Builds ``recipe``'s pip layer on ``base_image`` (an id or tag) and returns the new, untagged image id."""
    base_config = (await client.images.inspect(base_image)).get("Config") or {}
    wheels = Path(tempfile.mkdtemp(prefix="corral-wheels-"))
    try:
        wheels.chmod(0o755)  # read by root in the container (maybe a remapped uid)
        if recipe.pip:
            target = await probe_python(client, base_image, recipe.suite, report)
            await download_wheels(
                recipe.pip,
                wheels,
                python_version=target.version,
                platforms=platform_tags(target.glibc, platform.machine()),
                report=report,
                executable=pip_executable,
            )
            wheel_count = sum(1 for path in wheels.iterdir() if path.suffix == ".whl")
            command = ["/bin/sh", "-c", _INSTALL_SCRIPT, "corral-pip-layer", owner, *recipe.pip]
        else:
            wheel_count = 0
            command = ["/bin/true"]
        config = _layer_container_config(base_image, command, wheels, base_config)
        async with _container(client, config) as container:
            report(BuildProgress("installing", f"installing {len(recipe.pip)} requirement(s) into {VENV_DIR}",
                                 0, wheel_count or None))
            parser = PipInstallProgressParser(wheel_count)
            exit_code, tail = await _run_to_completion(container, parser.feed, report)
            if exit_code != 0:
                details = "\n".join(tail[-_LOG_TAIL_LINES:])
                raise ImageBuildError(f"installing the pip packages failed (exit code {exit_code}):\n{details}")
            report(BuildProgress("customizing", "committing the pip layer"))
            committed = await container.commit(
                changes=layer_changes(base_config, recipe.image_labels(), with_venv=bool(recipe.pip)),
                message=f"corral recipe {recipe.name} ({recipe.digest}): pip layer",
                pause=False,
            )
        return str(committed["Id"])
    finally:
        shutil.rmtree(wheels, ignore_errors=True)


async def probe_python(client: aiodocker.Docker, image: str, suite: str, report: ProgressCallback) -> SuitePython:
    """The image's ``python3`` version and glibc, else the suite's known ones."""
    report(BuildProgress("resolving", f"reading the Python version of {image[:19]}"))
    config = {
        "Image": image,
        "Entrypoint": ["python3"],
        "Cmd": ["-c", _PROBE_SCRIPT],
        "HostConfig": {"NetworkMode": "none"},
    }
    found: SuitePython | None = None
    try:
        async with _container(client, config) as container:
            exit_code, lines = await _run_to_completion(container, lambda line: None, report)
        if exit_code == 0 and lines:
            answer = json.loads(lines[-1])
            libc_name, libc_version = answer["libc"]
            if libc_name == "glibc":
                major, minor = (int(part) for part in libc_version.split(".")[:2])
                found = SuitePython(str(answer["python"]), (major, minor))
    except (aiodocker.DockerError, ValueError, KeyError, TypeError):
        found = None
    if found is None:
        found = SUITE_PYTHON.get(suite)
        if found is None:
            raise ImageBuildError(f"cannot tell the Python version of {image} (suite {suite!r} is not in SUITE_PYTHON)")
    report(BuildProgress("resolving", f"target: CPython {found.version}, glibc {found.glibc[0]}.{found.glibc[1]}"))
    return found


def platform_tags(glibc: tuple[int, int], machine: str) -> list[str]:
    """``--platform`` values for a glibc: manylinux_2_<glibc>..manylinux_2_17, manylinux2014, any."""
    arch = _ARCH_ALIASES.get(machine.lower(), machine.lower())
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, _OLDEST_MANYLINUX_MINOR - 1, -1)]
    return [*tags, f"manylinux2014_{arch}", "any"]


def pip_download_command(
    requirements: Sequence[str], dest: Path, *, python_version: str, platforms: Sequence[str], executable: str
) -> list[str]:
    """The host-side download; no index or other pip configuration is added (the host's applies)."""
    abi = "cp" + python_version.replace(".", "")
    return [
        executable, "-m", "pip", "download",
        "--dest", str(dest),
        "--only-binary=:all:",
        "--python-version", python_version,
        "--implementation", "cp",
        "--abi", abi,
        *[f"--platform={tag}" for tag in platforms],
        "--progress-bar", "off",
        "--no-input",
        "--disable-pip-version-check",
        "--",
        *requirements,
    ]


async def download_wheels(
    requirements: Sequence[str],
    dest: Path,
    *,
    python_version: str,
    platforms: Sequence[str],
    report: ProgressCallback,
    executable: str = sys.executable,
) -> None:
    command = pip_download_command(
        requirements, dest, python_version=python_version, platforms=platforms, executable=executable
    )
    environment = dict(os.environ)
    environment["PYTHONUNBUFFERED"] = "1"  # lines as they happen, not in 8 KiB bursts
    report(BuildProgress("resolving", f"pip download {' '.join(requirements)}"))
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=environment,
        start_new_session=True,
    )
    parser = PipDownloadProgressParser()
    try:
        assert process.stdout is not None
        async for raw_line in process.stdout:
            event = parser.feed(raw_line.decode("utf-8", "replace"))
            if event is not None:
                report(event)
        exit_code = await process.wait()
    finally:
        await _stop_process(process)
    if exit_code != 0:
        details = "\n".join(parser.tail)
        raise ImageBuildError(f"pip download exited with code {exit_code}:\n{details}")


class PipDownloadProgressParser:
    """``pip download`` output → ``resolving`` (each requirement collected) and ``downloading`` (each file)."""

    _COLLECTING = re.compile(r"^Collecting (\S+)")
    _DOWNLOADING = re.compile(r"^\s*Downloading (\S+)(?: \(([^)]*)\))?")
    _ALREADY = re.compile(r"^\s*File was already downloaded (\S+)")
    _LOCAL = re.compile(r"^Processing (\S+\.whl)")  # a wheel from a file:// index or find-links directory
    _DONE = re.compile(r"^Successfully downloaded (.*)")

    def __init__(self, tail_size: int = _LOG_TAIL_LINES) -> None:
        self.collected = 0
        self.downloaded = 0
        self.tail: list[str] = []
        self._tail_size = tail_size

    def feed(self, line: str) -> BuildProgress | None:
        line = line.rstrip()
        if not line.strip():
            return None
        self.tail = (self.tail + [line])[-self._tail_size:]
        if match := self._COLLECTING.match(line):
            self.collected += 1
            return BuildProgress("resolving", match.group(1), self.collected)
        if match := self._DOWNLOADING.match(line):
            if match.group(1).endswith(".metadata"):  # PEP 658 metadata only, not the wheel
                return None
            self.downloaded += 1
            size = f" ({match.group(2)})" if match.group(2) else ""
            return BuildProgress("downloading", f"{_file_name(match.group(1))}{size}", self.downloaded)
        if match := self._LOCAL.match(line):
            self.downloaded += 1
            return BuildProgress("downloading", f"{_file_name(match.group(1))} (local)", self.downloaded)
        if match := self._ALREADY.match(line):
            self.downloaded += 1
            return BuildProgress("downloading", f"{_file_name(match.group(1))} (cached)", self.downloaded)
        if match := self._DONE.match(line):
            count = len(match.group(1).split())
            return BuildProgress("downloading", f"{count} distributions downloaded", count, count)
        if line.startswith("ERROR:"):
            return BuildProgress("downloading", line)
        return None


class PipInstallProgressParser:
    """``pip install`` output in the layer container → ``installing`` events (wheels processed / total)."""

    _PROCESSING = re.compile(r"^Processing (\S+)")

    def __init__(self, total: int) -> None:
        self.total = total or None
        self.processed = 0

    def feed(self, line: str) -> BuildProgress | None:
        if match := self._PROCESSING.match(line):
            self.processed += 1
            return BuildProgress("installing", _file_name(match.group(1)), self.processed, self.total)
        if line.startswith("Installing collected packages"):
            return BuildProgress("installing", "unpacking into the venv", self.processed, self.total)
        if line.startswith("Successfully installed"):
            return BuildProgress("installing", "installed", self.total or self.processed, self.total)
        if line.startswith("ERROR:"):
            return BuildProgress("installing", line)
        return None


def layer_changes(base_config: dict[str, Any], labels: dict[str, str], *, with_venv: bool) -> list[str]:
    """Commit changes that give the layer its base's config back (the container ran as root with
    another command), the venv first on PATH, and the recipe's labels."""
    base_path = _env_value(base_config.get("Env") or [], "PATH") or _DEFAULT_PATH
    venv_bin = f"{VENV_DIR}/bin"
    if with_venv and venv_bin not in base_path.split(":"):
        base_path = f"{venv_bin}:{base_path}"
    changes = dockerfile_changes(
        user=base_config.get("User") or "root",
        workdir=base_config.get("WorkingDir") or "/",
        env={"PATH": base_path},
        labels=labels,
        cmd=list(base_config.get("Cmd") or []),
    )
    if base_config.get("Entrypoint"):  # the container's was overridden (an image without one needs nothing:
        # "ENTRYPOINT []" would not clear it)
        changes.append(f"ENTRYPOINT {json.dumps(list(base_config['Entrypoint']))}")
    return changes


def _layer_container_config(
    image: str, command: list[str], wheels: Path, base_config: dict[str, Any]
) -> dict[str, Any]:
    # The command goes in Cmd; Entrypoint is overridden only when the base has one (layer_changes restores it).
    entrypoint = {"Entrypoint": command[:1], "Cmd": command[1:]} if base_config.get("Entrypoint") else {"Cmd": command}
    return {
        "Image": image,
        "User": "0",
        **entrypoint,
        "AttachStdin": False,
        "Tty": False,
        "HostConfig": {
            "NetworkMode": "none",
            "Binds": [f"{wheels}:{WHEELS_MOUNT}:ro"],
        },
    }


@contextlib.asynccontextmanager
async def _container(client: aiodocker.Docker, config: dict[str, Any]) -> AsyncIterator[Any]:
    """A created container, removed (forcibly) on the way out: after success, failure or cancellation."""
    container = await client.containers.create(config)
    try:
        yield container
    finally:
        with contextlib.suppress(aiodocker.DockerError):
            await asyncio.shield(container.delete(force=True))


async def _run_to_completion(
    container: Any, on_line: Callable[[str], BuildProgress | None], report: ProgressCallback
) -> tuple[int, list[str]]:
    """Starts the container, feeds each log line (stdout and stderr) to ``on_line``, returns the exit
    code and the last log lines."""
    await container.start()
    tail: list[str] = []
    pending = ""
    async for chunk in container.log(stdout=True, stderr=True, follow=True):
        pending += chunk
        *lines, pending = pending.split("\n")
        for line in lines:
            tail = (tail + [line.rstrip()])[-_LOG_TAIL_LINES:]
            event = on_line(line.rstrip())
            if event is not None:
                report(event)
    if pending.strip():
        tail = (tail + [pending.rstrip()])[-_LOG_TAIL_LINES:]
    outcome = await container.wait()
    return int(outcome.get("StatusCode", -1)), tail


async def _stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), _TERMINATE_GRACE_SECONDS)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


def _env_value(env: list[str], name: str) -> str | None:
    for item in env:
        key, _, value = item.partition("=")
        if key == name:
            return value
    return None


def _file_name(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[-1]
