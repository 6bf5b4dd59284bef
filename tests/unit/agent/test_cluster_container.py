"""The container configuration of a cluster session's kernels: network, env contract, mounts, ports."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral.agent.backend.cluster_container import cluster_services
from corral.agent.backend.container_config import build_container_config
from corral.agent.config import AgentConfig
from corral.agent.kernel_spec import KernelSpec
from corral.common import cluster as contract
from corral.common.errors import BackendError
from corral.kernels.services import parse_services

from .cluster_specs import PORT_BASE, cluster, kernel_spec

JUPYTER_AND_SSHD = {"ai.corral.services": "jupyterlab:http:8888,sshd:tcp:2200"}


def _container(spec: KernelSpec, tmp_path: Path, interface: str | None = None) -> dict[str, Any]:
    return build_container_config(
        spec, AgentConfig(data_dir=tmp_path), tmp_path / "k", Path("/pkg/kernels"), {}, "", interface
    )


def _env(container: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in container["Env"])


def test_an_ordinary_kernel_has_no_cluster_settings(tmp_path: Path) -> None:
    container = _container(kernel_spec(None), tmp_path)
    host = container["HostConfig"]
    assert "NetworkMode" not in host and "ExtraHosts" not in host
    assert "Hostname" not in container and "NetworkingConfig" not in container
    assert host["Binds"] == ["/pkg/kernels:/opt/corral:ro", f"{tmp_path / 'k'}:/run/corral:rw"]
    env = _env(container)
    assert not any(name.startswith("CORRAL_CLUSTER_") for name in env)
    assert not {"MASTER_ADDR", "RANK", "WORLD_SIZE", "NCCL_SOCKET_IFNAME"} & set(env)
    # An absent field and an explicit null are the same ordinary kernel.
    assert KernelSpec.model_validate({**kernel_spec(None).model_dump(), "cluster": None}).cluster is None


def test_a_single_node_kernel_joins_its_sessions_network_by_its_name(tmp_path: Path) -> None:
    spec = kernel_spec(cluster("single-node", idx=1), env={"RANK": "7", "MINE": "1"})
    container = _container(spec, tmp_path)
    network = contract.session_network_name("sess-1")
    assert container["HostConfig"]["NetworkMode"] == network
    assert container["NetworkingConfig"] == {"EndpointsConfig": {network: {"Aliases": ["sub1"]}}}
    assert container["Hostname"] == "sub1"
    assert "ExtraHosts" not in container["HostConfig"]
    assert f"{tmp_path / 'k' / 'cluster' / 'ssh_config'}:{contract.CONTAINER_SSH_CONFIG}:ro" in (
        container["HostConfig"]["Binds"]
    )
    env = _env(container)
    expected = {
        "CORRAL_CLUSTER_SIZE": "3", "CORRAL_CLUSTER_MODE": "single-node",
        "CORRAL_CLUSTER_HOSTS": "main1,sub1,sub2", "CORRAL_CLUSTER_HOST": "sub1",
        "CORRAL_CLUSTER_ROLE": "sub", "CORRAL_CLUSTER_IDX": "1",
        "CORRAL_CLUSTER_HOSTFILE": "/run/corral/cluster/hostfile",
        "CORRAL_CLUSTER_SSH_LISTEN": f"0.0.0.0:{contract.CLUSTER_SSH_PORT}",
        "MASTER_ADDR": "main1", "MASTER_PORT": "29500", "NNODES": "3", "NODE_RANK": "1",
        "WORLD_SIZE": "3", "RANK": "1", "LOCAL_RANK": "0",
        "GLOO_SOCKET_IFNAME": "eth0", "NCCL_SOCKET_IFNAME": "eth0",
    }
    assert {name: env.get(name) for name in expected} == expected  # RANK: Corral's wins over the session's
    assert "CORRAL_CLUSTER_PORT_BASE" not in env and "CORRAL_CLUSTER_PORT_COUNT" not in env  # multi-node only
    assert env["MINE"] == "1"  # the rest of the session's own env stays


def test_a_multi_node_kernel_uses_the_nodes_network_and_names_its_peers(tmp_path: Path) -> None:
    container = _container(kernel_spec(cluster("multi-node", idx=2)), tmp_path, interface="ens5")
    host = container["HostConfig"]
    assert host["NetworkMode"] == "host"
    assert host["ExtraHosts"] == ["main1:10.0.0.1", "sub1:10.0.0.2", "sub2:10.0.0.3"]
    assert "Hostname" not in container and "NetworkingConfig" not in container  # Docker refuses both with host
    env = _env(container)
    assert env["CORRAL_CLUSTER_MODE"] == "multi-node" and env["CORRAL_CLUSTER_ROLE"] == "sub"
    assert env["CORRAL_CLUSTER_PORT_BASE"] == str(PORT_BASE) and env["CORRAL_CLUSTER_PORT_COUNT"] == "16"
    assert env["CORRAL_CLUSTER_SSH_LISTEN"] == f"10.0.0.3:{PORT_BASE + 1}"
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("10.0.0.1", str(PORT_BASE))
    assert (env["RANK"], env["NODE_RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == ("2", "2", "3", "0")
    assert env["GLOO_SOCKET_IFNAME"] == env["NCCL_SOCKET_IFNAME"] == "ens5"


def test_a_multi_node_kernel_without_a_known_interface_leaves_the_choice_to_gloo_and_nccl(tmp_path: Path) -> None:
    env = _env(_container(kernel_spec(cluster("multi-node")), tmp_path, interface=None))
    assert "GLOO_SOCKET_IFNAME" not in env and "NCCL_SOCKET_IFNAME" not in env


def test_a_multi_node_peer_without_an_address_is_refused(tmp_path: Path) -> None:
    spec = cluster("multi-node")
    spec.peers[1].address = None
    with pytest.raises(BackendError, match="sub1 has no address"):
        _container(kernel_spec(spec), tmp_path)


def test_multi_node_kernels_run_only_sshd_and_in_the_sessions_port_block(caplog: pytest.LogCaptureFixture) -> None:
    declared = parse_services(JUPYTER_AND_SSHD)
    moved = cluster_services(declared, cluster("multi-node"))
    # On the node's network other kernels could reach an unauthenticated JupyterLab: it is left out.
    assert [(s.name, s.port) for s in moved] == [("sshd", PORT_BASE + 2)]
    assert moved[0].command == declared[1].command  # {port} is filled in by the runner
    assert "not running jupyterlab" in caplog.text


def test_single_node_services_keep_their_ports_and_sshd_always_starts_at_boot() -> None:
    lazy_sshd = parse_services({
        "ai.corral.services": "sshd:tcp:2200",
        "ai.corral.service.sshd": '{"command": ["/usr/sbin/sshd", "-D"], "start": "lazy"}',
    })
    assert lazy_sshd[0].start == "lazy"
    kept = cluster_services(parse_services(JUPYTER_AND_SSHD), cluster("single-node"))
    assert [(s.name, s.port) for s in kept] == [("jupyterlab", 8888), ("sshd", 2200)]
    assert [s.start for s in cluster_services(lazy_sshd, cluster("single-node"))] == ["boot"]
    assert [s.start for s in cluster_services(lazy_sshd, cluster("multi-node"))] == ["boot"]


def test_a_port_block_too_small_for_the_images_services_is_refused() -> None:
    with pytest.raises(BackendError, match="needs 3 ports on the node; the session's port block has 2"):
        cluster_services(parse_services(JUPYTER_AND_SSHD), cluster("multi-node", port_count=2))
    assert len(cluster_services(parse_services(JUPYTER_AND_SSHD), cluster("multi-node", port_count=3))) == 1
