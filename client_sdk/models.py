"""What the manager returns: the API models shared with the manager (``corral.common.api_models``).

The same pydantic models build the manager's responses and its OpenAPI
document, so the SDK parses exactly what the server sends. Parsing is
lenient — unknown fields are ignored and absent ones get defaults — so a
newer server does not break an older client. Each object keeps the exact
document it came from in ``raw`` (what ``--json`` prints). Records the SDK
has always handed out as dicts (a vfolder's ``shared_with``, an agent's
``gpus``, a project's ``vfolders``, users, storage hosts) are still dicts.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from corral.common.api_models import (
    Agent,
    GroupQueue,
    QueueView,
    UsageReport,
    AppToken,
    SessionService,
    SessionServiceList,
    SshAccess,
    SshKey,
    SshKeyList,
    AgentList,
    ApiModel,
    Health,
    Image,
    ImageList,
    Kernel,
    NewUser,
    Project,
    ProjectList,
    ProjectMember,
    ResourceGroup,
    ResourceGroupList,
    ResourcePolicy,
    ResourcePolicyList,
    Scorer,
    Session,
    SessionLogs,
    SessionPage,
    StatusChange,
    StorageHostList,
    UserList,
    Vfolder,
    VfolderList,
    VfolderToken,
    WhoAmI,
)
from corral.common.session_status import TERMINAL as TERMINAL_STATUSES
from corral.common.session_status import SessionStatus

FAILED_STATUSES = frozenset({SessionStatus.ERROR, SessionStatus.CANCELLED})

__all__ = [
    "FAILED_STATUSES", "TERMINAL_STATUSES", "Agent", "AgentList", "ApiModel", "AppToken", "SessionService",
    "SessionServiceList", "SshAccess", "SshKey", "SshKeyList", "Health", "Image", "ImageList", "Kernel",
    "NewUser", "Project", "ProjectList", "ProjectMember", "GroupQueue", "QueueView", "UsageReport", "ResourceGroup", "ResourceGroupList", "ResourcePolicy",
    "ResourcePolicyList", "Scorer", "Session", "SessionLogs", "SessionPage", "StatusChange",
    "StorageHostList", "UserList", "Vfolder", "VfolderList", "VfolderToken", "WhoAmI", "parse_time",
]


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
