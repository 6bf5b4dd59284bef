"""What a cluster session's kernel adds to its container configuration (pure, testable): its network,
the cluster env contract (common/cluster.py), the ssh client config mount, and its services' ports."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from corral.common import cluster
from corral.common.errors import BackendError
from corral.kernels import services

from ..cluster_files import ssh_config_path

log = logging.getLogger(__name__)

SINGLE_NODE_INTERFACE = "eth0"  # a container's one interface on the session's bridge network


def host_port(address: str, port: int) -> str:
    """``ADDRESS:PORT``, with an IPv6 address in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def own_address(spec: cluster.ClusterSpec) -> str:
    """This kernel's node address (multi-node; the manager gives every peer one)."""
    peer = next((peer for peer in spec.peers if peer.idx == spec.idx), None)
    if peer is None or not peer.address:
        raise BackendError(f"cluster kernel {spec.name} has no address of its own among its peers")
    return peer.address


def ssh_listen(spec: cluster.ClusterSpec) -> str:
    """Where the kernel's sshd also listens for its peers."""
    if spec.mode == "single-node":
        return host_port("0.0.0.0", spec.ssh_port)
    return host_port(own_address(spec), spec.ssh_port)


def cluster_env(spec: cluster.ClusterSpec, interface: str | None) -> dict[str, str]:
    """The env contract of common/cluster.py, plus what PyTorch's launchers read (one process per kernel:
    torchrun sets its workers' own RANK / LOCAL_RANK / WORLD_SIZE over these). ``interface`` names the
    device GLOO and NCCL should use (None: leave them to choose)."""
    peers = sorted(spec.peers, key=lambda peer: peer.idx)
    env = {
        cluster.SIZE_ENV: str(spec.size),
        cluster.MODE_ENV: spec.mode,
        cluster.HOSTS_ENV: ",".join(cluster.kernel_name(peer.idx) for peer in peers),
        cluster.HOST_ENV: spec.name,
        cluster.ROLE_ENV: spec.role,
        cluster.IDX_ENV: str(spec.idx),
        cluster.HOSTFILE_ENV: cluster.CONTAINER_HOSTFILE,
        cluster.SSH_LISTEN_ENV: ssh_listen(spec),
        "MASTER_ADDR": spec.master_addr(),
        "MASTER_PORT": str(spec.master_port),
        "NNODES": str(spec.size),
        "NODE_RANK": str(spec.idx),
        "WORLD_SIZE": str(spec.size),
        "RANK": str(spec.idx),
        "LOCAL_RANK": "0",
    }
    if spec.mode == "multi-node":
        env[cluster.PORT_BASE_ENV] = str(spec.port_base)
        env[cluster.PORT_COUNT_ENV] = str(spec.port_count)
    if interface:
        env["GLOO_SOCKET_IFNAME"] = interface
        env["NCCL_SOCKET_IFNAME"] = interface
    return env


def network_settings(spec: cluster.ClusterSpec, session_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(HostConfig entries, top-level container config entries)`` for the kernel's network.

    single-node: the session's bridge network, where the kernel is known by its name;
    multi-node: the node's network, the peers named in /etc/hosts by their nodes' addresses (a host-
    networked container keeps the node's hostname: Docker refuses another)."""
    if spec.mode == "single-node":
        network = cluster.session_network_name(session_id)
        return {"NetworkMode": network}, {
            "Hostname": spec.name,
            "NetworkingConfig": {"EndpointsConfig": {network: {"Aliases": [spec.name]}}},
        }
    hosts = []
    for peer in sorted(spec.peers, key=lambda peer: peer.idx):
        if not peer.address:
            raise BackendError(f"multi-node cluster peer {cluster.kernel_name(peer.idx)} has no address")
        hosts.append(f"{cluster.kernel_name(peer.idx)}:{peer.address}")
    return {"NetworkMode": "host", "ExtraHosts": hosts}, {}


def cluster_binds(kernel_dir: Path) -> list[str]:
    return [f"{ssh_config_path(kernel_dir)}:{cluster.CONTAINER_SSH_CONFIG}:ro"]


def cluster_services(
    definitions: list[services.ServiceDefinition], spec: cluster.ClusterSpec
) -> list[services.ServiceDefinition]:
    """The image's services as a cluster kernel runs them: sshd at boot (launchers ssh to the peers at
    once), and on the node's network (multi-node) each on its own port of the session's block — the
    k-th declared gets ``port_base + SERVICE_PORT_OFFSET + k`` — so kernels of two sessions on one node
    never clash.

    On the node's network a service listens on the node's loopback, where other host-networked kernels
    of that node can connect too: only sshd, which checks keys itself, is run there. The others (an
    unauthenticated JupyterLab, say) are left out of multi-node kernels, with a log line."""
    result = [
        dataclasses.replace(definition, start="boot") if definition.name == services.SSHD else definition
        for definition in definitions
    ]
    if spec.mode != "multi-node":
        return result
    left_out = [d.name for d in result if d.name != services.SSHD]
    if left_out:
        log.warning("multi-node kernel: not running %s on the node's network (no authentication of its own); "
                    "use a single-node session for them", ", ".join(left_out))
    result = [d for d in result if d.name == services.SSHD]
    needed = cluster.SERVICE_PORT_OFFSET + len(result)
    if needed > spec.port_count:
        block = f" ({spec.port_base}-{spec.port_base + spec.port_count - 1})" if spec.port_count else ""
        raise BackendError(
            f"the image declares {len(result)} service(s), and with the master and sshd ports that needs "
            f"{needed} ports on the node; the session's port block has {spec.port_count}{block}"
        )
    return [
        dataclasses.replace(definition, port=spec.port_base + cluster.SERVICE_PORT_OFFSET + k)
        for k, definition in enumerate(result)
    ]
