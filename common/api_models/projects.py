"""Projects and their members."""
from __future__ import annotations

from typing import Annotated

from typing_extensions import TypedDict

from .base import OPTIONAL_KEY, ApiModel, Timestamp, one_of

ProjectRole = Annotated[str, one_of("member", "manager")]


class ProjectMember(ApiModel):
    username: str = ""
    role: ProjectRole = "member"
    since: Timestamp | None = None


class ProjectVfolder(TypedDict):
    id: str
    name: str


class Project(ApiModel):
    """A project; ``members`` and ``vfolders`` come with a single project, not with listings.

    ``role`` is the caller's, null for an admin who is not a member.
    """

    id: str = ""
    name: str = ""
    description: str = ""
    created_at: Timestamp | None = None
    role: ProjectRole | None = None
    member_count: int = 0
    resource_policy: str | None = None
    fair_share: float = 1.0
    members: Annotated[list[ProjectMember], OPTIONAL_KEY] = []
    vfolders: Annotated[list[ProjectVfolder], OPTIONAL_KEY] = []


class ProjectList(ApiModel):
    items: list[Project] = []
