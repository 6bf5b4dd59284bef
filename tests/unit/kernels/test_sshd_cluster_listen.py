"""A cluster kernel's sshd also listens where the session's other kernels reach it."""
from __future__ import annotations

from corral.common import cluster
from corral.kernels.runner_services import CLUSTER_SSH_LISTEN_ENV, sshd_config


def _listen(environ: dict[str, str], port: int = 2200) -> list[str]:
    text = sshd_config(port, "/run/corral/ssh", "/run/corral/sshd", "internal-sftp", environ)
    return [line for line in text.splitlines() if line.startswith("ListenAddress ")]


def test_the_runner_reads_the_variable_the_agent_sets() -> None:
    assert CLUSTER_SSH_LISTEN_ENV == cluster.SSH_LISTEN_ENV


def test_an_ordinary_kernels_sshd_is_on_the_loopback_only() -> None:
    assert _listen({}) == ["ListenAddress 127.0.0.1:2200"]
    assert _listen({CLUSTER_SSH_LISTEN_ENV: " "}) == ["ListenAddress 127.0.0.1:2200"]


def test_a_cluster_kernels_sshd_also_listens_for_its_peers() -> None:
    assert _listen({CLUSTER_SSH_LISTEN_ENV: "0.0.0.0:2222"}) == [
        "ListenAddress 127.0.0.1:2200", "ListenAddress 0.0.0.0:2222",
    ]
    assert _listen({CLUSTER_SSH_LISTEN_ENV: "10.0.0.2:40001"}, port=40003) == [
        "ListenAddress 127.0.0.1:40003", "ListenAddress 10.0.0.2:40001",
    ]


def test_a_wildcard_on_the_services_own_port_replaces_the_loopback() -> None:
    assert _listen({CLUSTER_SSH_LISTEN_ENV: "0.0.0.0:2222"}, port=2222) == ["ListenAddress 0.0.0.0:2222"]
