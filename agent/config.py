"""Agent configuration (TOML file + ``CORRAL_AGENT_*`` env vars)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from corral.common.config import StrictModel, load_config

ENV_PREFIX = "CORRAL_AGENT_"


class RpcConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(6001, ge=0, le=65535)
    # What the manager should dial; defaults to http://host:port.
    advertised_address: str = ""


class ManagerLinkConfig(StrictModel):
    url: str = "http://127.0.0.1:8080"
    cluster_secret: str = ""
    heartbeat_interval_s: float = Field(3.0, gt=0)


class ResourcesConfig(StrictModel):
    # 0 = detect from the host. Overrides let one machine act as a bigger node.
    cpu_count: int = Field(0, ge=0)
    mem: str = ""  # e.g. "16g"; empty = host memory minus reserved_mem
    reserved_mem: str = "512m"
    cpu_pinning: bool = False  # also pin cores with cpusets (not only a quota)


class GpuConfig(StrictModel):
    """``[gpu]``: discovery plugin and how fractional GPUs are enforced (configs/gpus/README.md)."""

    # "cuda": NVML discovery, Docker device requests (NVIDIA container runtime).
    # "mock": GPUs from a topology file; nothing is passed to containers but env.
    plugin: Literal["none", "mock", "cuda"] = "none"
    topology: str = ""  # mock plugin: topology file
    # Fractions: "framework" = limits via env + injected sitecustomize (PyTorch,
    # JAX, TensorFlow); "mps" = one MPS control daemon per GPU with memory and
    # thread limits; "none" = the device and the CORRAL_GPU_* env only.
    sharing: Literal["framework", "mps", "none"] = "framework"
    # MPS: the control binary, and where the per-GPU pipe/log directories live
    # (empty = <data_dir>/mps).
    mps_control: str = "nvidia-cuda-mps-control"
    mps_dir: str = ""


class DockerConfig(StrictModel):
    # "missing": pull images not present locally; "never": only local images.
    image_pull: Literal["missing", "never"] = "missing"
    pids_limit: int = Field(4096, ge=64)
    kernel_uid: int = 1000
    kernel_gid: int = 1000


class SessionsConfig(StrictModel):
    """``[sessions]``: what of the node session containers may see."""

    # The node's pip configuration files and CA bundle, bind-mounted read-only
    # (agent/backend/container_config.py pip_config_mounts), so `pip install`
    # in a session uses the node's index, proxy settings and certificates.
    share_pip_config: bool = False
    # The node's global files (/etc/pip.conf, /etc/xdg/pip/pip.conf) keep their
    # paths; the agent user's file ($PIP_CONFIG_FILE, else ~/.config/pip/pip.conf,
    # else ~/.pip/pip.conf; or pip_config_file when set) goes to
    # /etc/corral/pip.conf with PIP_CONFIG_FILE pointing at it.
    pip_config_file: str = ""
    # The CA bundle, mounted at /etc/corral/ca-certificates.crt (PIP_CERT, SSL_CERT_FILE,
    # REQUESTS_CA_BUNDLE point at it); empty = $PIP_CERT, else $SSL_CERT_FILE, else
    # /etc/ssl/certs/ca-certificates.crt or /etc/pki/tls/certs/ca-bundle.crt.
    ca_bundle: str = ""


class ClusterConfig(StrictModel):
    """``[cluster]``: how this node runs the kernels of multi-node cluster sessions (common/cluster.py)."""

    multi_node_network: Literal["host"] = Field(
        "host",
        description=(
            "How kernels of a multi-node cluster session reach their peers on other nodes. 'host' (the only "
            "design built): the node's own network, peers named in /etc/hosts by their nodes' addresses, and "
            "the session's services and sshd on the session's port block."
        ),
    )
    interface: str = Field(
        "",
        description=(
            "The network interface for GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME in host-networked kernels. "
            "Empty: the interface that carries the kernel's own peer address; when none does, neither "
            "variable is set (and the agent logs a warning)."
        ),
    )


class EtcdConfig(StrictModel):
    endpoints: list[str] = []
    prefix: str = "/corral"


class AgentConfig(StrictModel):
    id: str = ""  # empty = derived from the host name and RPC port
    resource_group: str = "default"
    backend: Literal["docker", "dummy"] = "docker"
    data_dir: Path = Path("/var/lib/corral/agent")
    rpc: RpcConfig = RpcConfig()
    manager: ManagerLinkConfig = ManagerLinkConfig()
    resources: ResourcesConfig = ResourcesConfig()
    gpu: GpuConfig = GpuConfig()
    docker: DockerConfig = DockerConfig()
    etcd: EtcdConfig = EtcdConfig()
    sessions: SessionsConfig = SessionsConfig()
    cluster: ClusterConfig = ClusterConfig()


def load_agent_config(path: Path | None, **overrides: object) -> AgentConfig:
    return load_config(AgentConfig, path, env_prefix=ENV_PREFIX, overrides=overrides or None)
