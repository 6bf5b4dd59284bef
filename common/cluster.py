"""Cluster sessions: what the manager tells each kernel's agent about the session's other kernels.

A session of ``cluster_size`` N has kernels ``main1``, ``sub1`` … ``sub{N-1}`` (cluster index 0 … N-1).

- ``single-node``: all N on one node, on a private Docker bridge network of the session's own
  (`session_network_name`); each kernel is reachable by its name there (Docker's embedded DNS).
- ``multi-node``: the kernels may be on different nodes. They use the node's network (host
  networking, see docs/architecture.md "Cluster sessions" for why) and a block of ports given to the
  session on every node it uses (``port_base`` … ``port_base + port_count - 1``); each kernel's
  ``/etc/hosts`` names its peers by the addresses of their nodes.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ClusterMode = Literal["single-node", "multi-node"]
CLUSTER_MODES: tuple[str, ...] = ("single-node", "multi-node")
MAX_CLUSTER_SIZE = 64

# Ports inside a session's private network (single-node) — or offsets into its port block (multi-node).
DEFAULT_MASTER_PORT = 29500  # what torch.distributed uses by default
CLUSTER_SSH_PORT = 2222  # sshd for the session's own kernels (single-node; multi-node: port_base + 1)
PORT_BLOCK = 16  # ports a multi-node session gets on each of its nodes
PORT_RANGE = (28672, 32767)  # where those blocks come from (inclusive: 256 blocks), below Linux's ephemeral ports

# The env contract (documented in docs/architecture.md "Cluster sessions").
SIZE_ENV = "CORRAL_CLUSTER_SIZE"
MODE_ENV = "CORRAL_CLUSTER_MODE"
HOSTS_ENV = "CORRAL_CLUSTER_HOSTS"  # comma-separated kernel names, main1 first
HOST_ENV = "CORRAL_CLUSTER_HOST"  # this kernel's name
ROLE_ENV = "CORRAL_CLUSTER_ROLE"  # main | sub
IDX_ENV = "CORRAL_CLUSTER_IDX"  # 0 … N-1
HOSTFILE_ENV = "CORRAL_CLUSTER_HOSTFILE"
PORT_BASE_ENV = "CORRAL_CLUSTER_PORT_BASE"  # first port of the session's block (multi-node; else unset)
PORT_COUNT_ENV = "CORRAL_CLUSTER_PORT_COUNT"
# What the agent writes for the session's kernels, in the runner directory (/run/corral):
CONTAINER_CLUSTER_DIR = "/run/corral/cluster"
CONTAINER_HOSTFILE = f"{CONTAINER_CLUSTER_DIR}/hostfile"  # MPI style: "main1 slots=K" per kernel
CONTAINER_SSH_KEY = f"{CONTAINER_CLUSTER_DIR}/id_ed25519"  # the session's key (its public half is authorized)
CONTAINER_SSH_CONFIG = "/etc/ssh/ssh_config.d/corral-cluster.conf"  # read-only bind: Host entries for the peers
CONTAINER_KNOWN_HOSTS = f"{CONTAINER_CLUSTER_DIR}/known_hosts"  # the peers' host keys, learnt on first contact
# Where the kernel's sshd also listens for its peers (comma-separated ``ADDRESS:PORT``; read by the
# runner, kernels/runner_services.py, which keeps its own copy of the name: it imports no pydantic).
SSH_LISTEN_ENV = "CORRAL_CLUSTER_SSH_LISTEN"
SERVICE_PORT_OFFSET = 2  # multi-node: the image's k-th service (declared order) gets port_base + 2 + k


def kernel_name(cluster_idx: int) -> str:
    """``main1`` for index 0, ``sub{i}`` for index i."""
    if cluster_idx < 0:
        raise ValueError(f"cluster index {cluster_idx} is negative")
    return "main1" if cluster_idx == 0 else f"sub{cluster_idx}"


def kernel_index(name: str) -> int | None:
    """The cluster index a kernel name stands for (None: not a kernel name)."""
    if name == "main1":
        return 0
    if name.startswith("sub") and name[3:].isdigit() and not name[3:].startswith("0"):
        return int(name[3:])
    return None


def role_of(cluster_idx: int) -> str:
    return "main" if cluster_idx == 0 else "sub"


def session_network_name(session_id: str) -> str:
    """The per-session Docker bridge network of a single-node cluster session."""
    return f"corral-s-{session_id}"


class ClusterPeer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    idx: int
    # multi-node: the IP address of the peer's node (what /etc/hosts maps ``name`` to);
    # single-node: None, the name resolves on the session's network.
    address: str | None = None


class ClusterSpec(BaseModel):
    """Sent with every kernel of a session whose ``cluster_size`` is above 1."""

    model_config = ConfigDict(extra="ignore")

    size: int = Field(ge=2, le=MAX_CLUSTER_SIZE)
    mode: ClusterMode
    idx: int = Field(ge=0)
    peers: list[ClusterPeer]  # every kernel of the session, this one included, by index
    port_base: int = 0  # multi-node: the session's block on every node it uses; 0 for single-node
    port_count: int = 0
    ssh_private_key: str = ""  # the session's own key pair (OpenSSH format), for ssh between its kernels
    ssh_public_key: str = ""

    @property
    def name(self) -> str:
        return kernel_name(self.idx)

    @property
    def role(self) -> str:
        return role_of(self.idx)

    @property
    def master_port(self) -> int:
        return self.port_base if self.mode == "multi-node" else DEFAULT_MASTER_PORT

    @property
    def ssh_port(self) -> int:
        return self.port_base + 1 if self.mode == "multi-node" else CLUSTER_SSH_PORT

    def master_addr(self) -> str:
        """An IP where the peers' nodes are known (multi-node), else the name ``main1``."""
        main = self.peers[0]
        return main.address or main.name
