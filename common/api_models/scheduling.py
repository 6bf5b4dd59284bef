"""Resource groups (where sessions run, in what order) and resource policies (the limits users and
projects are held to)."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import OPTIONAL_KEY, ApiModel, Timestamp, one_of

QueuePolicy = Annotated[str, one_of("fifo", "lifo", "drf", "fair-share")]
ScorerName = Annotated[str, one_of("topology", "concentrated", "dispersed", "first-fit")]
SessionType = Annotated[str, one_of("interactive", "batch")]


class Scorer(ApiModel):
    name: ScorerName = ""
    weight: float = 1.0


class ResourceGroup(ApiModel):
    """A resource group. Admins also get who may use it and its agents (``allowed_users``,
    ``allowed_projects``, ``agents``, ``alive_agents``); users see the groups they may use."""

    name: str = ""
    description: str = ""
    queue_policy: QueuePolicy = "fifo"
    backfill: bool = True
    preemption: bool = False
    scorers: list[Scorer] = []
    allowed_session_types: list[SessionType] = []
    allowed_users: Annotated[list[str] | None, OPTIONAL_KEY] = Field(
        None, description="usernames that may use it; null (with allowed_projects null too): everyone"
    )
    allowed_projects: Annotated[list[str] | None, OPTIONAL_KEY] = Field(
        None, description="projects whose sessions may use it; null (with allowed_users null too): everyone"
    )
    agents: Annotated[int, OPTIONAL_KEY] = Field(0, description="agents registered in it (not TERMINATED)")
    alive_agents: Annotated[int, OPTIONAL_KEY] = 0
    created_at: Timestamp | None = None


class ResourceGroupList(ApiModel):
    items: list[ResourceGroup] = []


class ResourcePolicy(ApiModel):
    """Limits; null (or a slot missing from ``max_slots``) is no limit. ``max_slots`` holds totals over the
    holder's active sessions: ``cpu`` cores, ``mem`` bytes, ``cuda.device`` whole GPUs, ``cuda.shares``
    GPUs counted by share. ``users`` and ``projects`` are those held to it."""

    name: str = ""
    max_concurrent_sessions: int | None = None
    max_pending_sessions: int | None = None
    max_slots: dict[str, str] = {}
    max_cluster_size: int | None = None
    max_session_lifetime_s: float | None = None
    idle_timeout_s: float | None = None
    users: list[str] = []
    projects: list[str] = []
    created_at: Timestamp | None = None


class ResourcePolicyList(ApiModel):
    items: list[ResourcePolicy] = []


class QueueEntry(ApiModel):
    """A pending session in the order its group's queue policy considers it now."""

    position: int = 0
    session_id: str = ""
    name: str = ""
    owner: str = ""
    type: str = ""
    requested_slots: dict[str, str] = {}
    priority: int = 50
    created_at: Timestamp | None = None
    factors: dict[str, float] = Field({}, description="the policy's figures behind the position (dominant share, "
                                                       "fair-share factor, age and priority score …)")
    reason: str = Field("", description="why it waits; empty when it would be placed now")
    would_start_on: str | None = Field(None, description="the agent a pass would place it on now")


class HeadReservation(ApiModel):
    session_id: str = ""
    agent_id: str = ""
    start_at: Timestamp | None = Field(None, description="when it is expected to start there")


class GroupQueue(ApiModel):
    group: str = ""
    queue_policy: QueuePolicy = "fifo"
    backfill: bool = True
    entries: list[QueueEntry] = []
    head_reservation: HeadReservation | None = None


class QueueView(ApiModel):
    groups: list[GroupQueue] = []
