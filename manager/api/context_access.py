"""Typed access to the services the app hands its handlers (built once, in `server.py`)."""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..agent_client import AgentClient
from ..app_auth import AppAuth
from ..local_agents import LocalAgents
from ..session_access import AccessRecorder
from ..ssh_keys import SshKeyService
from ..agent_registry import AgentRegistry
from ..auth import AuthUser, RequestAuthenticator
from ..events import EventHub
from ..lifecycle.kernel_events import KernelEvents
from ..project_service import ProjectService
from ..resource_groups import ResourceGroupService
from ..resource_policies import ResourcePolicyService
from ..scheduler.queue_view import QueueViewer
from ..session_service import SessionService
from ..storage.vfolder_service import VfolderService
from ..web_sessions import WebSessionService


@dataclass(frozen=True)
class ApiServices:
    """Everything the HTTP handlers use, complete when the app is built."""

    manager_id: str
    cluster_secret: str
    sessionmaker: async_sessionmaker[AsyncSession]
    hub: EventHub
    authenticator: RequestAuthenticator
    agent_client: AgentClient
    sessions: SessionService
    registry: AgentRegistry
    kernel_events: KernelEvents
    vfolders: VfolderService
    projects: ProjectService
    ssh_keys: SshKeyService
    app_auth: AppAuth
    access: AccessRecorder
    local_agents: LocalAgents
    web_sessions: WebSessionService
    resource_groups: ResourceGroupService
    resource_policies: ResourcePolicyService
    queue: QueueViewer


SERVICES_KEY = web.AppKey("corral.services", ApiServices)
USER_KEY = web.RequestKey("corral.user", AuthUser)


def ctx_of(request: web.Request) -> ApiServices:
    return request.app[SERVICES_KEY]


def service_of(request: web.Request) -> SessionService:
    return request.app[SERVICES_KEY].sessions


def registry_of(request: web.Request) -> AgentRegistry:
    return request.app[SERVICES_KEY].registry


def user_of(request: web.Request) -> AuthUser:
    return request[USER_KEY]
