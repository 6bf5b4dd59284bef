"""JSON views of sessions, kernels and agents as the REST API returns them.

Each view is built through its model in ``corral.common.api_models`` (the
shape the OpenAPI document and the SDK share) and returned as JSON data.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common import api_models as api
from corral.common.cluster import kernel_name
from corral.common.gpu_slots import NodeGpuState
from corral.common.node_resources import Allocation

from .db.models import Agent, Kernel, Session, SessionStatusChange
from .states import ACTIVE


def kernel_model(kernel: Kernel) -> api.Kernel:
    return api.Kernel(
        id=kernel.id,
        cluster_idx=kernel.cluster_idx,
        name=kernel_name(kernel.cluster_idx),
        agent_id=kernel.agent_id,
        container_id=kernel.container_id,
        status=kernel.status,
        status_reason=kernel.status_reason,
        requested_slots=kernel.requested_slots,
        allocation=kernel.allocation,
        exit_code=kernel.exit_code,
    )


def status_change_model(change: SessionStatusChange) -> api.StatusChange:
    return api.StatusChange(session_id=change.session_id, status=change.status, reason=change.reason, at=change.at)


def session_model(
    sess: Session, owner_name: str | None = None, history: Sequence[SessionStatusChange] | None = None,
    *, project_name: str | None = None,
) -> api.Session:
    fields: dict[str, Any] = {}
    if history is not None:
        fields["status_history"] = [status_change_model(h) for h in history]
    return api.Session(
        id=sess.id,
        name=sess.name,
        owner=owner_name or sess.owner_id,
        type=sess.type,
        status=sess.status,
        status_reason=sess.status_reason,
        image=sess.image,
        command=sess.command,
        env=sess.env,
        requested_slots=sess.requested_slots,
        mounts=sess.mounts,
        resource_group=sess.resource_group,
        cluster_size=sess.cluster_size or 1,
        cluster_mode=sess.cluster_mode or "single-node",
        project=project_name or sess.project_id,
        priority=sess.priority if sess.priority is not None else 50,
        created_at=sess.created_at,
        scheduled_at=sess.scheduled_at,
        started_at=sess.started_at,
        terminated_at=sess.terminated_at,
        exit_code=sess.exit_code,
        agent_id=sess.kernels[0].agent_id if sess.kernels else None,
        kernels=[kernel_model(k) for k in sess.kernels],
        ssh=ssh_access(sess),
        **fields,
    )


def ssh_access(sess: Session) -> api.SshAccess | None:
    """The main kernel's sshd, once its agent reported the host key."""
    kernel = sess.kernels[0] if sess.kernels else None
    if kernel is None or not kernel.ssh_host_key:
        return None
    return api.SshAccess(user=kernel.ssh_user or "", host_key=kernel.ssh_host_key, host_key_alias=f"corral-{sess.id}")


def kernel_view(kernel: Kernel) -> dict[str, Any]:
    return kernel_model(kernel).to_json()


def session_view(
    sess: Session, owner_name: str | None = None, history: Sequence[SessionStatusChange] | None = None,
    *, project_name: str | None = None,
) -> dict[str, Any]:
    """The session; with ``history``, also its ``status_history``."""
    return session_model(sess, owner_name, history, project_name=project_name).to_json()


def status_change_view(change: SessionStatusChange) -> dict[str, Any]:
    return status_change_model(change).to_json()


def agent_view(agent: Agent, allocations: Iterable[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """One agent as the API shows it.

    ``gpus``: per device index, UUID, model, memory, NUMA node, CPU affinity
    and ``free_share`` (1.0 = fully free), the latter computed from
    ``allocations`` — the stored allocations of the agent's active kernels —
    and ``null`` when they are not given. ``gpu_links``: the
    `nvidia-smi topo -m` link matrix between them, row/column = GPU index.
    """
    capacity = agent.capacity or {}
    return api.Agent(
        id=agent.id,
        status=agent.status,
        status_reason=agent.status_reason,
        address=agent.address,
        resource_group=agent.resource_group,
        available_slots=agent.available_slots,
        occupied_slots=agent.occupied_slots,
        cpu_cores=capacity.get("cpu_cores", []),
        **gpu_view(capacity.get("gpu_topology"), allocations),
        images=[img.get("name") for img in agent.images or []],
        first_contact=agent.first_contact,
        last_heartbeat=agent.last_heartbeat,
        version=agent.version,
    ).to_json()


def gpu_view(topology: Mapping[str, Any] | None, allocations: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """An agent's ``gpus`` and ``gpu_links`` (see `agent_view`)."""
    if not topology or not topology.get("devices"):
        return {"gpus": [], "gpu_links": []}
    state = NodeGpuState.from_topology_json(topology)
    for record in allocations or ():
        shares = Allocation.from_json(record).gpu_shares
        if shares and state.can_take(shares):
            state.take(shares)
    devices = state.device_views()
    if allocations is None:
        for device in devices:
            device["free_share"] = None
    return {"gpus": devices, "gpu_links": [list(row) for row in state.topology.links]}


async def agent_views(db: AsyncSession, agents: Sequence[Agent]) -> list[dict[str, Any]]:
    """`agent_view` for each agent, with free GPU shares from its active kernels' allocations."""
    allocations: dict[str, list[Mapping[str, Any]]] = {a.id: [] for a in agents}
    rows = await db.execute(
        select(Kernel.agent_id, Kernel.allocation).where(
            Kernel.status.in_(list(ACTIVE)), Kernel.agent_id.in_(list(allocations))
        )
    )
    for agent_id, record in rows:
        if record and agent_id in allocations:
            allocations[agent_id].append(record)
    return [agent_view(a, allocations[a.id]) for a in agents]
