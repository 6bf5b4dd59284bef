"""The container contract between the agent and the in-container runner.

The agent bind-mounts ``KERNELS_PACKAGE_DIR`` read-only at
``CONTAINER_KERNELS_DIR`` and a per-kernel host directory (prepared with
``prepare_runner_dir``) at ``CONTAINER_RUNNER_DIR``; the runner listens on
``RUNNER_SOCKET_NAME`` inside it, so the host reaches it at
``<host dir>/runner.sock``.
"""
from __future__ import annotations

import os
from pathlib import Path

KERNELS_PACKAGE_DIR = Path(__file__).resolve().parent
CONTAINER_KERNELS_DIR = "/opt/corral"
CONTAINER_RUNNER_DIR = "/run/corral"
RUNNER_SOCKET_NAME = "runner.sock"
RUNNER_SOCKET_ENV = "CORRAL_RUNNER_SOCKET"
SESSION_ID_ENV = "CORRAL_SESSION_ID"
KERNEL_ID_ENV = "CORRAL_KERNEL_ID"
RUNNER_DIR_MODE = 0o777


def interactive_command() -> list[str]:
    return ["python3", f"{CONTAINER_KERNELS_DIR}/runner.py"]


def batch_command(command: str | list[str]) -> list[str]:
    """A string is run by ``sh -c``; a list is the argv as given."""
    argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
    if not argv:
        raise ValueError("a batch session needs a command")
    return ["python3", f"{CONTAINER_KERNELS_DIR}/runner.py", "--batch", "--", *argv]


def prepare_runner_dir(host_dir: Path) -> Path:
    """Creates the per-kernel socket directory; returns the socket's host path.

    The container runs as the image's user (uid 1000 in Corral images, but any
    uid in foreign images), which must be able to create the socket here, so
    the directory is world-writable (0777, set explicitly: umask would mask
    it). Keep its parent private to the agent (0700/0711) so other host users
    cannot reach the socket.
    """
    host_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(host_dir, RUNNER_DIR_MODE)
    return host_dir / RUNNER_SOCKET_NAME


def bind_mounts(host_runner_dir: Path) -> list[str]:
    """Docker ``HostConfig.Binds`` entries for the contract."""
    return [
        f"{KERNELS_PACKAGE_DIR}:{CONTAINER_KERNELS_DIR}:ro",
        f"{host_runner_dir}:{CONTAINER_RUNNER_DIR}:rw",
    ]

