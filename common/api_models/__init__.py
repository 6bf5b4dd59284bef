"""The shapes of the REST API's responses, shared by the manager, its OpenAPI document and the SDK.

Only pydantic and ``corral.common`` here: the client imports this without the server extra.
"""
from .base import OPTIONAL_KEY, ApiModel, Timestamp
from .capacity import Capacity, CapacityGpu, CapacityNode
from .cluster import Agent, AgentGpu, AgentList, Health, Image, ImageList, MigDevice, WhoAmI
from .problem import Problem
from .projects import Project, ProjectList, ProjectMember, ProjectVfolder
from .usage import UsageReport, UsageRow, UsageTotals
from .scheduling import (
    GroupQueue, HeadReservation, QueueEntry, QueueView, ResourceGroup, ResourceGroupList, ResourcePolicy,
    ResourcePolicyList, Scorer,
)
from .sessions import (
    ExecuteError,
    ExecuteEvent,
    ExecuteOutput,
    ExecuteResult,
    GpuAssignment,
    AppToken,
    Kernel,
    KernelAllocation,
    Session,
    SessionLogs,
    SessionMount,
    SessionPage,
    SessionService,
    SessionServiceList,
    SshAccess,
    StatusChange,
)
from .users import NewUser, SshKey, SshKeyList, User, UserList
from .vfolders import StorageHost, StorageHostList, Vfolder, VfolderList, VfolderShare, VfolderToken, VfolderUsage

__all__ = [
    "OPTIONAL_KEY", "Agent", "Capacity", "CapacityGpu", "CapacityNode", "AppToken", "SessionService", "SessionServiceList", "SshAccess", "SshKey", "SshKeyList", "AgentGpu", "AgentList", "ApiModel", "ExecuteError", "ExecuteEvent", "ExecuteOutput",
    "ExecuteResult", "GpuAssignment", "Health", "Image", "ImageList", "Kernel", "KernelAllocation", "MigDevice",
    "NewUser", "Problem", "Project", "ProjectList", "ProjectMember", "ProjectVfolder", "ResourceGroup",
    "ResourceGroupList", "ResourcePolicy", "ResourcePolicyList", "Scorer", "GroupQueue", "HeadReservation",
    "QueueEntry", "QueueView", "UsageReport", "UsageRow", "UsageTotals", "Session", "SessionLogs",
    "SessionMount", "SessionPage", "StatusChange", "StorageHost", "StorageHostList", "Timestamp", "User", "UserList",
    "Vfolder", "VfolderList", "VfolderShare", "VfolderToken", "VfolderUsage", "WhoAmI",
]
