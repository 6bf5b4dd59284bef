"""What the manager returns, as dataclasses parsed from its JSON.

Parsing is lenient — unknown fields are ignored and absent ones get defaults —
so a newer server does not break an older client. Each object keeps the exact
document it came from in ``raw`` (what ``--json`` prints).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from corral.common.session_status import TERMINAL as TERMINAL_STATUSES
from corral.common.session_status import SessionStatus

FAILED_STATUSES = frozenset({SessionStatus.ERROR, SessionStatus.CANCELLED})


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class StatusChange:
    status: str
    reason: str | None
    at: datetime | None
    session_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # "status": a stored status change; "progress": ephemeral news while the session
    # starts (``reason`` says e.g. how far an image pull got; ``status`` is unchanged).
    kind: str = "status"

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], kind: str = "status") -> "StatusChange":
        return cls(
            status=str(doc.get("status", "")),
            reason=_opt_str(doc.get("reason")),
            at=parse_time(doc.get("at")),
            session_id=_opt_str(doc.get("session_id")),
            raw=dict(doc),
            kind=kind,
        )

    @property
    def is_progress(self) -> bool:
        return self.kind == "progress"

    @property
    def is_terminal(self) -> bool:
        return self.kind == "status" and self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class Kernel:
    id: str
    agent_id: str | None
    container_id: str | None
    status: str
    allocation: dict[str, Any]
    exit_code: int | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Kernel":
        return cls(
            id=str(doc.get("id", "")),
            agent_id=_opt_str(doc.get("agent_id")),
            container_id=_opt_str(doc.get("container_id")),
            status=str(doc.get("status", "")),
            allocation=_dict(doc.get("allocation")),
            exit_code=_opt_int(doc.get("exit_code")),
            raw=dict(doc),
        )


@dataclass(frozen=True)
class Session:
    id: str
    name: str
    owner: str | None
    type: str
    status: str
    status_reason: str | None
    image: str
    command: str | list[str] | None
    env: dict[str, str]
    requested_slots: dict[str, str]
    created_at: datetime | None
    started_at: datetime | None
    terminated_at: datetime | None
    exit_code: int | None
    agent_id: str | None
    kernels: list[Kernel]
    status_history: list[StatusChange]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Session":
        command = doc.get("command")
        return cls(
            id=str(doc.get("id", "")),
            name=str(doc.get("name") or doc.get("id", "")),
            owner=_opt_str(doc.get("owner")),
            type=str(doc.get("type", "")),
            status=str(doc.get("status", "")),
            status_reason=_opt_str(doc.get("status_reason")),
            image=str(doc.get("image", "")),
            command=command if isinstance(command, (str, list)) else None,
            env=_str_map(doc.get("env")),
            requested_slots=_str_map(doc.get("requested_slots")),
            created_at=parse_time(doc.get("created_at")),
            started_at=parse_time(doc.get("started_at")),
            terminated_at=parse_time(doc.get("terminated_at")),
            exit_code=_opt_int(doc.get("exit_code")),
            agent_id=_opt_str(doc.get("agent_id")),
            kernels=[Kernel.from_json(k) for k in doc.get("kernels") or [] if isinstance(k, Mapping)],
            status_history=[
                StatusChange.from_json(h) for h in doc.get("status_history") or [] if isinstance(h, Mapping)
            ],
            raw=dict(doc),
        )

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class SessionPage:
    items: list[Session]
    next_cursor: str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Agent:
    id: str
    status: str
    address: str | None
    available_slots: dict[str, str]
    occupied_slots: dict[str, str]
    gpus: list[Any]
    images: list[str]
    last_heartbeat: datetime | None
    version: str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Agent":
        return cls(
            id=str(doc.get("id", "")),
            status=str(doc.get("status", "")),
            address=_opt_str(doc.get("address")),
            available_slots=_str_map(doc.get("available_slots")),
            occupied_slots=_str_map(doc.get("occupied_slots")),
            gpus=list(doc.get("gpus") or []),
            images=[str(i) for i in doc.get("images") or []],
            last_heartbeat=parse_time(doc.get("last_heartbeat")),
            version=_opt_str(doc.get("version")),
            raw=dict(doc),
        )


@dataclass(frozen=True)
class Image:
    name: str
    image_id: str
    size: int | None
    labels: dict[str, str]
    agents: list[str]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Image":
        return cls(
            name=str(doc.get("name", "")),
            image_id=str(doc.get("image_id", "")),
            size=_opt_int(doc.get("size")),
            labels=_str_map(doc.get("labels")),
            agents=[str(a) for a in doc.get("agents") or []],
            raw=dict(doc),
        )


@dataclass(frozen=True)
class WhoAmI:
    user_id: str
    username: str
    access_key: str
    role: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "WhoAmI":
        return cls(
            user_id=str(doc.get("user_id", "")),
            username=str(doc.get("username", "")),
            access_key=str(doc.get("access_key", "")),
            role=str(doc.get("role", "")),
            raw=dict(doc),
        )


@dataclass(frozen=True)
class Health:
    status: str
    version: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Health":
        return cls(status=str(doc.get("status", "")), version=str(doc.get("version", "")), raw=dict(doc))


@dataclass(frozen=True)
class Vfolder:
    id: str
    name: str
    owner: str
    owner_kind: str
    host: str
    quota_bytes: int | None
    status: str
    permission: str  # the caller's: "ro" | "rw"
    is_owner: bool
    shared_with: list[dict[str, str]]
    usage_bytes: int | None  # from `get_vfolder` (None where not asked or unavailable)
    created_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    project: str | None = None  # the owning project's name, for project vfolders

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Vfolder":
        usage = doc.get("usage") if isinstance(doc.get("usage"), Mapping) else {}
        return cls(
            id=str(doc.get("id", "")),
            name=str(doc.get("name", "")),
            owner=str(doc.get("owner", "")),
            owner_kind=str(doc.get("owner_kind", "user")),
            host=str(doc.get("host", "")),
            quota_bytes=_opt_int(doc.get("quota_bytes")),
            status=str(doc.get("status", "")),
            permission=str(doc.get("permission", "")),
            is_owner=bool(doc.get("is_owner")),
            shared_with=[dict(s) for s in doc.get("shared_with") or [] if isinstance(s, Mapping)],
            usage_bytes=_opt_int(usage.get("bytes")) if usage else None,
            created_at=parse_time(doc.get("created_at")),
            raw=dict(doc),
            project=_opt_str(doc.get("project")),
        )


@dataclass(frozen=True)
class VfolderToken:
    """What the storage proxy's file API needs: where it is and a short-lived token."""

    client_url: str
    token: str
    vfid: str
    permission: str
    expires_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "VfolderToken":
        return cls(
            client_url=str(doc.get("client_url", "")),
            token=str(doc.get("token", "")),
            vfid=str(doc.get("vfid", "")),
            permission=str(doc.get("permission", "")),
            expires_at=parse_time(doc.get("expires_at")),
            raw=dict(doc),
        )


@dataclass(frozen=True)
class ProjectMember:
    username: str
    role: str  # "member" | "manager"
    since: datetime | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "ProjectMember":
        return cls(
            username=str(doc.get("username", "")),
            role=str(doc.get("role", "member")),
            since=parse_time(doc.get("since")),
        )


@dataclass(frozen=True)
class Project:
    """A project: its members use its vfolders (``members`` and ``vfolders`` come with ``get_project``)."""

    id: str
    name: str
    description: str
    role: str | None  # the caller's: "member", "manager", or None (an admin who is not a member)
    member_count: int
    members: list[ProjectMember]
    vfolders: list[dict[str, str]]
    created_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Project":
        members = [ProjectMember.from_json(m) for m in doc.get("members") or [] if isinstance(m, Mapping)]
        return cls(
            id=str(doc.get("id", "")),
            name=str(doc.get("name", "")),
            description=str(doc.get("description") or ""),
            role=_opt_str(doc.get("role")),
            member_count=int(doc.get("member_count") or len(members)),
            members=members,
            vfolders=[_str_map(v) for v in doc.get("vfolders") or [] if isinstance(v, Mapping)],
            created_at=parse_time(doc.get("created_at")),
            raw=dict(doc),
        )
