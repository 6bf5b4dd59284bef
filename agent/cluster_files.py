"""The files a cluster session's kernel finds in ``cluster.CONTAINER_CLUSTER_DIR`` (its runner directory):
an MPI hostfile, the session's key pair, an ssh client config naming the peers (bind-mounted read-only at
``cluster.CONTAINER_SSH_CONFIG``) and the known_hosts file ssh fills in on first contact with each peer."""
from __future__ import annotations

import os
from pathlib import Path

from corral.common import cluster
from corral.common.node_resources import Allocation

from . import ssh_material

HOSTFILE_NAME = "hostfile"
SSH_CONFIG_NAME = "ssh_config"
KNOWN_HOSTS_NAME = "known_hosts"


def slots_of(allocation: Allocation) -> int:
    """MPI slots for a kernel: its whole GPUs, else 1 (a fractional GPU or none)."""
    whole = len(allocation.gpu_shares) if allocation.gpu_whole else 0
    return whole if whole > 0 else 1


def hostfile_text(spec: cluster.ClusterSpec, slots: int) -> str:
    """``main1 slots=K`` per kernel, by index. The agent knows only its own kernel's allocation; the
    manager gives a session's kernels the same resources, so its slot count stands for every line."""
    return "".join(f"{cluster.kernel_name(peer.idx)} slots={slots}\n" for peer in sorted(spec.peers, key=_idx))


def ssh_config_text(spec: cluster.ClusterSpec) -> str:
    """A ``Host`` block per kernel of the session: where its sshd listens for peers, with the session key.
    No ``User``: every kernel runs as the same user. Host keys are learnt on first contact (each agent
    makes its kernel's own), under the kernel's name whatever address it is reached at."""
    blocks = ["# Written by the Corral agent: this cluster session's kernels (ssh, mpirun, pdsh).\n"]
    for peer in sorted(spec.peers, key=_idx):
        name = cluster.kernel_name(peer.idx)
        blocks.append(
            f"Host {name}\n"
            f"    HostName {peer.address or name}\n"
            f"    Port {spec.ssh_port}\n"
            f"    HostKeyAlias {name}\n"
            f"    IdentityFile {cluster.CONTAINER_SSH_KEY}\n"
            "    IdentitiesOnly yes\n"
            "    StrictHostKeyChecking accept-new\n"
            f"    UserKnownHostsFile {cluster.CONTAINER_KNOWN_HOSTS}\n"
            "    UpdateHostKeys no\n"
            "    LogLevel ERROR\n"
        )
    return "\n".join(blocks)


def ssh_config_path(kernel_dir: Path) -> Path:
    """The host file bind-mounted at ``cluster.CONTAINER_SSH_CONFIG``."""
    return ssh_material.cluster_dir(kernel_dir) / SSH_CONFIG_NAME


def write_cluster_files(
    kernel_dir: Path, spec: cluster.ClusterSpec, allocation: Allocation, uid: int, gid: int
) -> None:
    """Everything under the kernel's cluster directory, before its container is created. The directory
    and its files are the agent's; only known_hosts is the kernel user's to write."""
    directory = ssh_material.cluster_dir(kernel_dir)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    _write_public(directory / HOSTFILE_NAME, hostfile_text(spec, slots_of(allocation)))
    _write_public(directory / SSH_CONFIG_NAME, ssh_config_text(spec))
    ssh_material.write_session_key(kernel_dir, spec, uid, gid)
    known_hosts = ssh_material.host_path(kernel_dir, cluster.CONTAINER_KNOWN_HOSTS)
    known_hosts.touch()
    ssh_material.give_to_kernel_user(known_hosts, uid, gid, 0o644, 0o666)


def _write_public(path: Path, text: str) -> None:
    path.write_text(text)
    os.chmod(path, 0o644)


def _idx(peer: cluster.ClusterPeer) -> int:
    return peer.idx
