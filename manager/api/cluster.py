"""Cluster-wide read endpoints: health, whoami, agents, images."""
from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from corral.common import api_models as api
from corral.common.version import VERSION

from ..auth import require_admin
from ..db.models import Agent
from ..session_views import agent_views
from .context_access import ctx_of, user_of
from .responses import json_response


async def health(request: web.Request) -> web.Response:
    return json_response(api.Health, {"status": "ok", "version": VERSION, "manager_id": ctx_of(request).manager_id})


async def whoami(request: web.Request) -> web.Response:
    user = user_of(request)
    return json_response(
        api.WhoAmI,
        api.WhoAmI(user_id=user.user_id, username=user.username, access_key=user.access_key, role=user.role),
    )


async def list_agents(request: web.Request) -> web.Response:
    require_admin(user_of(request))
    async with ctx_of(request).sessionmaker() as db:
        agents = (await db.scalars(select(Agent).order_by(Agent.first_contact, Agent.id))).all()
        views = await agent_views(db, agents)
    return json_response(api.AgentList, {"items": views})


async def list_images(request: web.Request) -> web.Response:
    """Images present on alive agents, merged by name."""
    async with ctx_of(request).sessionmaker() as db:
        agents = (await db.scalars(select(Agent).where(Agent.status == "ALIVE").order_by(Agent.id))).all()
    merged: dict[str, dict[str, Any]] = {}
    for agent in agents:
        for image in agent.images or []:
            labels = image.get("labels") or {}
            entry = merged.setdefault(
                image["name"],
                {"name": image["name"], "image_id": image.get("image_id") or "", "size": image.get("size"),
                 "labels": labels, "agents": [], **_contents(labels)},
            )
            entry["agents"].append(agent.id)
    return json_response(api.ImageList, {"items": sorted(merged.values(), key=lambda e: e["name"])})


def _contents(labels: dict[str, str]) -> dict[str, Any]:
    """What an image holds, from the labels the builder stamps (kernels/image_probe.py)."""
    frameworks = [part.strip() for part in labels.get("ai.corral.frameworks", "").split(",") if part.strip()]
    services = [entry.split(":", 1)[0].strip() for entry in labels.get("ai.corral.services", "").split(",")
                if entry.strip()]
    return {"python": labels.get("ai.corral.python") or None, "frameworks": frameworks, "services": services}
