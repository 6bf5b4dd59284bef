"""Everything a manager's handlers and background tasks share."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from .auth import RequestAuthenticator
from .config import ManagerConfig
from .events import EventHub
from .project_service import ProjectService

if TYPE_CHECKING:
    from .agent_client import AgentClient
    from .scheduler.dispatcher import Scheduler
    from .storage.vfolder_service import VfolderService


@dataclass
class ManagerContext:
    config: ManagerConfig
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    hub: EventHub = field(default_factory=EventHub)
    authenticator: RequestAuthenticator = field(init=False)
    agent_client: "AgentClient" = field(init=False)
    scheduler: "Scheduler" = field(init=False)
    vfolders: "VfolderService" = field(init=False)
    projects: ProjectService = field(init=False)

    def __post_init__(self) -> None:
        self.authenticator = RequestAuthenticator(self.sessionmaker)
        self.projects = ProjectService(self.sessionmaker)
