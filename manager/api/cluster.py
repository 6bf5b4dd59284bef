"""Cluster-wide read endpoints: health, whoami, agents, images."""
from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from corral.common.version import VERSION

from ..auth import require_admin
from ..db.models import Agent
from ..session_views import agent_views
from .context_access import ctx_of, user_of


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": VERSION, "manager_id": ctx_of(request).config.id})


async def whoami(request: web.Request) -> web.Response:
    user = user_of(request)
    return web.json_response(
        {"user_id": user.user_id, "username": user.username, "access_key": user.access_key, "role": user.role}
    )


async def list_agents(request: web.Request) -> web.Response:
    require_admin(user_of(request))
    async with ctx_of(request).sessionmaker() as db:
        agents = (await db.scalars(select(Agent).order_by(Agent.first_contact, Agent.id))).all()
        views = await agent_views(db, agents)
    return web.json_response({"items": views})


async def list_images(request: web.Request) -> web.Response:
    """Images present on alive agents, merged by name."""
    async with ctx_of(request).sessionmaker() as db:
        agents = (await db.scalars(select(Agent).where(Agent.status == "ALIVE").order_by(Agent.id))).all()
    merged: dict[str, dict[str, Any]] = {}
    for agent in agents:
        for image in agent.images or []:
            entry = merged.setdefault(
                image["name"],
                {"name": image["name"], "image_id": image.get("image_id"), "size": image.get("size"),
                 "labels": image.get("labels", {}), "agents": []},
            )
            entry["agents"].append(agent.id)
    return web.json_response({"items": sorted(merged.values(), key=lambda e: e["name"])})
