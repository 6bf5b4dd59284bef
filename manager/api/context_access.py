"""Typed access to what the app stores for handlers."""
from __future__ import annotations

from aiohttp import web

from ..agent_registry import AgentRegistry
from ..auth import AuthUser
from ..context import ManagerContext
from ..session_service import SessionService

CONTEXT_KEY = web.AppKey("corral.context", ManagerContext)
SERVICE_KEY = web.AppKey("corral.sessions", SessionService)
USER_KEY = web.RequestKey("corral.user", AuthUser)


def ctx_of(request: web.Request) -> ManagerContext:
    return request.app[CONTEXT_KEY]


def service_of(request: web.Request) -> SessionService:
    return request.app[SERVICE_KEY]


def user_of(request: web.Request) -> AuthUser:
    return request[USER_KEY]

REGISTRY_KEY = web.AppKey("corral.agents", AgentRegistry)


def registry_of(request: web.Request) -> AgentRegistry:
    return request.app[REGISTRY_KEY]
