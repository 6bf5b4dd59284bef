"""Cluster kernel specs as the manager sends them, for the agent's cluster tests."""
from __future__ import annotations

from decimal import Decimal

from corral.agent.kernel_spec import KernelSpec
from corral.common.cluster import PORT_BLOCK, ClusterPeer, ClusterSpec, kernel_name
from corral.common.node_resources import Allocation
from corral.common.ssh_keys import generate_ed25519

NODE_ADDRESSES = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
PORT_BASE = 40000


def cluster(mode: str, idx: int = 0, size: int = 3, *, with_key: bool = True, port_count: int = PORT_BLOCK) -> ClusterSpec:
    multi = mode == "multi-node"
    pair = generate_ed25519("corral-session") if with_key else None
    return ClusterSpec(
        size=size, mode=mode, idx=idx,  # type: ignore[arg-type]
        peers=[ClusterPeer(name=kernel_name(i), idx=i, address=NODE_ADDRESSES[i] if multi else None)
               for i in range(size)],
        port_base=PORT_BASE if multi else 0, port_count=port_count if multi else 0,
        ssh_private_key=pair.private_openssh.decode() if pair else "",
        ssh_public_key=pair.public_line if pair else "",
    )


def kernel_spec(spec: ClusterSpec | None, *, gpus: int = 0, env: dict[str, str] | None = None) -> KernelSpec:
    allocation = Allocation(
        cpu=Decimal(1), mem=2**30, cpu_cores=(0,),
        gpu_shares={i: Decimal(1) for i in range(gpus)}, gpu_whole=gpus > 0,
    )
    return KernelSpec(
        kernel_id=f"k-{spec.idx if spec else 0}", session_id="sess-1", session_name="train", image="img",
        allocation=allocation.to_json(), env=env or {}, cluster=spec,
        cluster_idx=spec.idx if spec else 0,
    )
