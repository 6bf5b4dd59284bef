"""GET /capacity: what the alive agents of a resource group have free right now (the launch form's table).

The numbers come from the scheduler's own picture of the nodes (`load_node_views`: each alive agent's
advertised capacity with its active kernels' allocations replayed in a `NodeState`), so the form shows
what the scheduler would see on its next pass, not a re-derivation of the allocation rules.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiohttp import web

from corral.common import api_models as api
from corral.common.allocator import NodeState
from corral.common.errors import InvalidRequest, NotFound
from corral.common.resource_groups import DEFAULT_GROUP, GROUP_NAME_RE, NAME_RULE
from corral.common.slots import CPU, CUDA_DEVICE, MEM

from ..auth import AuthUser
from ..db.models import ResourceGroup, User
from ..resource_groups import member_projects, usable_by
from ..scheduler.node_view import load_node_views
from .context_access import ctx_of, user_of
from .responses import json_response


def node_capacity(agent_id: str, address: str, state: NodeState, *, with_address: bool) -> dict[str, Any]:
    """One node's row: totals from its capacity, free amounts from its allocator state."""
    free = state.free_slots()
    total = state.capacity.slots()
    gpus = state.gpus.device_views() if state.gpus is not None else []
    shares = [Decimal(g["free_share"]) for g in gpus]
    row: dict[str, Any] = {
        "id": agent_id,
        "cpu_total": _amount(total[CPU]),
        "cpu_free": _amount(free[CPU]),
        "mem_total": int(total[MEM]),
        "mem_free": int(free[MEM]),
        "gpus_total": len(gpus),
        "gpus_free": int(free[CUDA_DEVICE]) if gpus else 0,
        "max_free_share": _amount(max(shares, default=Decimal(0))),
        "gpus": [
            {"index": g["index"], "model": g["model"], "memory": g["memory"], "free_share": _amount(Decimal(g["free_share"]))}
            for g in gpus
        ],
    }
    if with_address:
        row["address"] = address
    return row


def _amount(value: Decimal) -> str:
    """A decimal as the API writes amounts: no exponent, no trailing zeros ("0.75", "8", "0")."""
    text = format(Decimal(value).normalize(), "f")
    return "0" if text in ("-0", "") else text


async def _group_name(request: web.Request, user: AuthUser) -> str:
    """The ``group`` asked for (else the caller's default group, else "default"), if they may use it."""
    name = request.query.get("group", "").strip()
    if name and not GROUP_NAME_RE.match(name):
        raise InvalidRequest(f"not a resource group name: must be {NAME_RULE}")
    async with ctx_of(request).sessionmaker() as db:
        if not name:
            owner = await db.get(User, user.user_id)
            name = (owner.default_group if owner is not None else None) or DEFAULT_GROUP
        group = await db.get(ResourceGroup, name)
        if group is None or (not user.is_admin and not usable_by(group, user, await member_projects(db, user.user_id))):
            raise NotFound(f"no resource group {name!r}", resource_group=name)
    return name


async def group_capacity(request: web.Request) -> web.Response:
    user = user_of(request)
    name = await _group_name(request, user)
    async with ctx_of(request).sessionmaker() as db:
        views = await load_node_views(db)
    nodes = [
        node_capacity(v.agent_id, v.address, v.state, with_address=user.is_admin)
        for v in sorted(views, key=lambda v: (v.first_contact, v.agent_id))
        if v.resource_group == name
    ]
    return json_response(api.Capacity, {
        "resource_group": name,
        "nodes": nodes,
        "max_free_gpus": max((n["gpus_free"] for n in nodes), default=0),
        "max_free_share": _amount(max((Decimal(n["max_free_share"]) for n in nodes), default=Decimal(0))),
    })
