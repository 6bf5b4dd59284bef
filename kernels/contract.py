"""The container contract between the agent and the in-container runner.

The agent bind-mounts ``KERNELS_PACKAGE_DIR`` read-only at
``CONTAINER_KERNELS_DIR`` and a per-kernel host directory (prepared with
``prepare_runner_dir``) at ``CONTAINER_RUNNER_DIR``; the runner listens on
``RUNNER_SOCKET_NAME`` inside it, so the host reaches it at
``<host dir>/runner.sock``.

Stdlib only and Python 3.9-compatible: ``runner.py`` imports it inside
containers, where it is a sibling module under ``CONTAINER_KERNELS_DIR``.
"""
from __future__ import annotations

import os
from pathlib import Path

KERNELS_PACKAGE_DIR = Path(__file__).resolve().parent
CONTAINER_KERNELS_DIR = "/opt/corral"
CONTAINER_RUNNER_DIR = "/run/corral"
RUNNER_SCRIPT = f"{CONTAINER_KERNELS_DIR}/runner.py"
RUNNER_SOCKET_NAME = "runner.sock"
CONTAINER_RUNNER_SOCKET = f"{CONTAINER_RUNNER_DIR}/{RUNNER_SOCKET_NAME}"
RUNNER_SOCKET_ENV = "CORRAL_RUNNER_SOCKET"  # overrides CONTAINER_RUNNER_SOCKET (tests run the runner on the host)
RUNNER_DIR_MODE = 0o777

# What every kernel finds in its environment.
SESSION_ID_ENV = "CORRAL_SESSION_ID"
SESSION_NAME_ENV = "CORRAL_SESSION_NAME"
KERNEL_ID_ENV = "CORRAL_KERNEL_ID"
CPU_ENV = "CORRAL_CPU"
MEM_ENV = "CORRAL_MEM"
CPU_CORES_ENV = "CORRAL_CPU_CORES"


def interactive_command() -> list[str]:
    return ["python3", RUNNER_SCRIPT]


def batch_command(command: str | list[str]) -> list[str]:
    """A string is run by ``sh -c``; a list is the argv as given."""
    argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
    if not argv:
        raise ValueError("a batch session needs a command")
    return ["python3", RUNNER_SCRIPT, "--batch", "--", *argv]


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
    return runner_socket_path(host_dir)


def runner_socket_path(host_runner_dir: Path) -> Path:
    """Where the host reaches the runner of the kernel whose runner directory this is."""
    return host_runner_dir / RUNNER_SOCKET_NAME


def bind_mounts(host_runner_dir: Path, kernels_package_dir: Path = KERNELS_PACKAGE_DIR) -> list[str]:
    """Docker ``HostConfig.Binds`` entries for the contract."""
    return [
        f"{kernels_package_dir}:{CONTAINER_KERNELS_DIR}:ro",
        f"{host_runner_dir}:{CONTAINER_RUNNER_DIR}:rw",
    ]

