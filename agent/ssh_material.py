"""What a kernel's sshd needs from the agent, in its runner directory: a host key of its own and the
owner's authorized keys (both read-only to the session: owned by the agent, outside the user's home);
for a kernel of a cluster session also the session's own key pair, whose public half is authorized too
(so its kernels can ssh to each other)."""
from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath

from corral.common import cluster
from corral.common.ssh_keys import generate_ed25519
from corral.kernels import contract, services

log = logging.getLogger(__name__)


def ssh_dir(kernel_dir: Path) -> Path:
    return kernel_dir / services.SSH_DIR


def host_path(kernel_dir: Path, container_path: str) -> Path:
    """Where a path under the container's runner directory (/run/corral/…) is on the host."""
    return kernel_dir / PurePosixPath(container_path).relative_to(contract.CONTAINER_RUNNER_DIR)


def cluster_dir(kernel_dir: Path) -> Path:
    """The host side of the kernel's ``cluster.CONTAINER_CLUSTER_DIR``."""
    return host_path(kernel_dir, cluster.CONTAINER_CLUSTER_DIR)


def session_key_path(kernel_dir: Path) -> Path:
    return host_path(kernel_dir, cluster.CONTAINER_SSH_KEY)


def session_public_key_path(kernel_dir: Path) -> Path:
    private = session_key_path(kernel_dir)
    return private.with_name(private.name + ".pub")


def give_to_kernel_user(path: Path, uid: int, gid: int, mode: int, fallback_mode: int) -> None:
    """chown ``path`` to the container's user with ``mode``; an agent that may not chown (not root) and
    is not that user leaves it ``fallback_mode`` instead (under its private state directory)."""
    try:
        os.chown(path, uid, gid)
    except PermissionError:
        if os.getuid() != uid:
            log.warning("cannot chown %s to %d (agent not root): leaving it %o", path, uid, fallback_mode)
            os.chmod(path, fallback_mode)
            return
    os.chmod(path, mode)


def _write_private_key(path: Path, data: bytes, uid: int, gid: int) -> None:
    """0600 and owned by the container's user, so its unprivileged sshd / ssh can read it."""
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    give_to_kernel_user(temporary, uid, gid, 0o600, 0o644)
    os.replace(temporary, path)


def write_host_key(kernel_dir: Path, uid: int, gid: int, comment: str) -> str:
    """Generates the kernel's Ed25519 host key; returns its public line (what known_hosts needs).

    The private key is 0600 and owned by the container's user so its unprivileged sshd can read
    it; an agent that may not chown (not root) leaves it 0644 under its private state directory."""
    directory = ssh_dir(kernel_dir)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    pair = generate_ed25519(comment)
    _write_private_key(directory / services.SSH_HOST_KEY_NAME, pair.private_openssh, uid, gid)
    (directory / (services.SSH_HOST_KEY_NAME + ".pub")).write_text(pair.public_line + "\n")
    return pair.public_line


def read_host_key(kernel_dir: Path) -> str:
    """The public host key written at creation ('' if none: a kernel created before host keys)."""
    try:
        return (ssh_dir(kernel_dir) / (services.SSH_HOST_KEY_NAME + ".pub")).read_text().strip()
    except OSError:
        return ""


def write_session_key(kernel_dir: Path, spec: cluster.ClusterSpec, uid: int, gid: int) -> None:
    """The cluster session's key pair at ``cluster.CONTAINER_SSH_KEY`` (nothing if the manager sent none)."""
    if not spec.ssh_private_key.strip():
        return
    path = session_key_path(kernel_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private_key(path, spec.ssh_private_key.strip().encode() + b"\n", uid, gid)  # ssh wants the newline
    public = session_public_key_path(kernel_dir)
    public.write_text(spec.ssh_public_key.strip() + "\n" if spec.ssh_public_key.strip() else "")
    os.chmod(public, 0o644)


def session_public_key(kernel_dir: Path) -> str:
    """The public half of the kernel's cluster session key ('' for an ordinary session)."""
    try:
        return session_public_key_path(kernel_dir).read_text().strip()
    except OSError:
        return ""


def write_authorized_keys(kernel_dir: Path, keys: list[str]) -> None:
    """Replaces the session's authorized_keys atomically (sshd reads it at each login); the cluster
    session's own key (when the kernel has one) stays authorized whatever the owner's keys are."""
    directory = ssh_dir(kernel_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / services.SSH_AUTHORIZED_KEYS_NAME
    temporary = path.with_suffix(".tmp")
    lines = [key.strip() for key in [*keys, session_public_key(kernel_dir)] if key.strip()]
    temporary.write_text("".join(f"{line}\n" for line in dict.fromkeys(lines)))
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
