"""What a kernel's sshd needs from the agent, in its runner directory: a host key of its own and the
owner's authorized keys (both read-only to the session: owned by the agent, outside the user's home)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from corral.common.ssh_keys import generate_ed25519
from corral.kernels import services

log = logging.getLogger(__name__)


def ssh_dir(kernel_dir: Path) -> Path:
    return kernel_dir / services.SSH_DIR


def write_host_key(kernel_dir: Path, uid: int, gid: int, comment: str) -> str:
    """Generates the kernel's Ed25519 host key; returns its public line (what known_hosts needs).

    The private key is 0600 and owned by the container's user so its unprivileged sshd can read
    it; an agent that may not chown (not root) leaves it 0644 under its private state directory."""
    directory = ssh_dir(kernel_dir)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    pair = generate_ed25519(comment)
    path = directory / services.SSH_HOST_KEY_NAME
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(pair.private_openssh)
    try:
        os.chown(temporary, uid, gid)
        os.chmod(temporary, 0o600)
    except PermissionError:
        if os.getuid() != uid:
            log.warning("cannot chown the host key of %s to %d (agent not root): leaving it 0644", kernel_dir, uid)
            os.chmod(temporary, 0o644)
        else:
            os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    (directory / (services.SSH_HOST_KEY_NAME + ".pub")).write_text(pair.public_line + "\n")
    return pair.public_line


def read_host_key(kernel_dir: Path) -> str:
    """The public host key written at creation ('' if none: a kernel created before host keys)."""
    try:
        return (ssh_dir(kernel_dir) / (services.SSH_HOST_KEY_NAME + ".pub")).read_text().strip()
    except OSError:
        return ""


def write_authorized_keys(kernel_dir: Path, keys: list[str]) -> None:
    """Replaces the session's authorized_keys atomically (sshd reads it at each login)."""
    directory = ssh_dir(kernel_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / services.SSH_AUTHORIZED_KEYS_NAME
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(f"{key.strip()}\n" for key in keys if key.strip()))
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
