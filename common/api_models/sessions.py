"""Sessions, their kernels and status changes; what ``execute`` streams."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping, Self, Union

from pydantic import ConfigDict, Field, RootModel, with_config
from typing_extensions import TypedDict

from corral.common.session_status import TERMINAL, SessionStatus

from .base import OPTIONAL_KEY, ApiModel, Timestamp, one_of

_STATUSES = tuple(SessionStatus)
_STATUS_CHANGE_ARGS = ("status", "reason", "at", "session_id")


class StatusChange(ApiModel):
    """One status change of a session; also the data of its server-sent events.

    ``kind`` is not part of the JSON: the SDK sets it to ``"progress"`` for the
    ephemeral news of a starting session (``event: progress``), whose
    ``reason`` says e.g. how far an image pull got.
    """

    status: Annotated[str, one_of(*_STATUSES)] = ""
    reason: str = ""
    at: Timestamp | None = None
    session_id: str = ""
    kind: Literal["status", "progress"] = Field("status", exclude=True)

    def __init__(self, *args: Any, **fields: Any) -> None:
        # StatusChange(status, reason, at, session_id), as the SDK's dataclass allowed.
        if len(args) > len(_STATUS_CHANGE_ARGS):
            raise TypeError(f"StatusChange takes at most {len(_STATUS_CHANGE_ARGS)} positional arguments")
        fields.update(zip(_STATUS_CHANGE_ARGS, args))
        super().__init__(**fields)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], kind: Literal["status", "progress"] = "status") -> Self:
        change = super().from_json(doc)
        return change if kind == "status" else change.model_copy(update={"kind": kind})

    @property
    def is_progress(self) -> bool:
        return self.kind == "progress"

    @property
    def is_terminal(self) -> bool:
        return self.kind == "status" and self.status in TERMINAL


@with_config(ConfigDict(extra="allow"))
class GpuAssignment(TypedDict):
    """A GPU (or a share of one) held by a kernel; ``mem_limit`` in bytes."""

    index: int
    uuid: str
    model: str
    share: str
    mem_limit: int


@with_config(ConfigDict(extra="allow"))
class KernelAllocation(TypedDict, total=False):
    """What a kernel holds on its agent, as the scheduler recorded it (older records may lack keys)."""

    cpu: str
    mem: int
    cpu_cores: list[int]
    numa_nodes: list[int]
    cpu_spilled: bool
    gpu_shares: dict[str, str]
    gpu_whole: bool
    gpus: list[GpuAssignment]


@with_config(ConfigDict(extra="allow"))
class SessionMount(TypedDict, total=False):
    """A vfolder bind-mounted into the session's containers."""

    name: str
    vfolder_id: str
    host: str
    vfid: str
    host_path: str
    container_path: str
    read_only: bool
    read_only_reason: str
    permission: Literal["ro", "rw"]


class Kernel(ApiModel):
    id: str = ""
    cluster_idx: int = 0
    name: str = Field("main1", description="main1, sub1 … sub{N-1} (by cluster_idx)")
    agent_id: str | None = None
    container_id: str | None = None
    status: Annotated[str, one_of(*_STATUSES)] = ""
    status_reason: str = ""
    requested_slots: dict[str, str] = {}
    allocation: KernelAllocation | None = None
    exit_code: int | None = None


class SshAccess(ApiModel):
    """How to reach the session's sshd: the login name and its own host key, for known_hosts."""

    user: str = ""
    host_key: str = Field("", description="the public host key line, e.g. 'ssh-ed25519 AAAA... corral-NAME'")
    host_key_alias: str = Field("", description="the name known_hosts pins it under (OpenSSH HostKeyAlias)")


class Session(ApiModel):
    """A session; ``status_history`` comes with a single session, not with listings."""

    id: str = ""
    name: str = ""
    owner: str | None = None
    type: Annotated[str, one_of("interactive", "batch")] = ""
    status: Annotated[str, one_of(*_STATUSES)] = ""
    status_reason: str = ""
    image: str = ""
    command: list[str] | None = None
    env: dict[str, str] = {}
    requested_slots: dict[str, str] = {}
    mounts: list[SessionMount] = []
    resource_group: str = "default"
    cluster_size: int = Field(1, description="its kernels: main1, sub1 … sub{N-1}")
    cluster_mode: Annotated[str, one_of("single-node", "multi-node")] = "single-node"
    project: str | None = Field(None, description="the project (name) it counts against; null: its owner's own")
    priority: int = Field(50, description="0-100; higher goes first where its group's queue policy uses it")
    created_at: Timestamp | None = None
    scheduled_at: Timestamp | None = None
    started_at: Timestamp | None = None
    terminated_at: Timestamp | None = None
    exit_code: int | None = None
    agent_id: str | None = None
    kernels: list[Kernel] = []
    ssh: SshAccess | None = None
    status_history: Annotated[list[StatusChange], OPTIONAL_KEY] = []

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


class SessionPage(ApiModel):
    items: list[Session] = []
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last")


class SessionLogs(ApiModel):
    logs: str = ""


class Interrupted(ApiModel):
    """The answer to an interrupt: whether code was running (and got SIGINT)."""

    interrupted: bool = Field(False, description="false: the interpreter was idle, nothing to interrupt")


class ExecuteOutput(ApiModel):
    op: Literal["output"] = "output"
    stream: Literal["stdout", "stderr"] = "stdout"
    data: str = ""


class ExecuteResult(ApiModel):
    """The last line of an execution."""

    op: Literal["result"] = "result"
    status: Annotated[str, one_of("ok", "error", "interrupted")] = ""
    exit_code: int = 0
    error: str | None = None


class ExecuteError(ApiModel):
    """The runner refused the request; ends the stream like a result."""

    op: Literal["error"] = "error"
    error: str = ""


class ExecuteEvent(RootModel[Annotated[Union[ExecuteOutput, ExecuteResult, ExecuteError], Field(discriminator="op")]]):
    """One NDJSON line of ``POST /sessions/{ref}/execute``."""


class SessionService(ApiModel):
    """A service of the session (declared by its image, plus the built-in terminal)."""

    name: str = ""
    protocol: Annotated[str, one_of("tcp", "http", "pty")] = ""
    port: int | None = None
    start: Annotated[str, one_of("boot", "lazy")] = "lazy"
    state: Annotated[str, one_of("stopped", "starting", "ready", "failed")] = ""
    error: str | None = None
    log_tail: str = ""
    started_at: Timestamp | None = None
    ready_at: Timestamp | None = None
    http_path: str | None = Field(None, description="http services: where the manager's proxy serves it")


class SessionServiceList(ApiModel):
    services: list[SessionService] = []


class AppToken(ApiModel):
    """A one-time link that logs a browser in to one service of one session."""

    url: str = Field("", description="path (on the manager) to open in the browser; carries the token")
    token: str = ""
    expires_at: Timestamp | None = None
