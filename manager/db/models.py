"""Database schema (SQLAlchemy 2 declarative). Every change needs a migration."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy import true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime()}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="user")  # "admin" | "user"
    created_at: Mapped[datetime]
    # argon2id hash of the web UI password; None: the user cannot sign in to the web UI.
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    # False: disabled by an admin; neither their keypairs nor their web sessions authenticate.
    is_active: Mapped[bool] = mapped_column(default=True, server_default=true())
    # Scheduling (DESIGN §5): the resource policy the user is held to (None: unlimited), the resource group
    # their sessions go to when they name none (None: "default"), the project their sessions count against
    # when they name none (None: no project), and their fair-share weight within it.
    resource_policy: Mapped[str | None] = mapped_column(String(64), default=None)
    default_group: Mapped[str | None] = mapped_column(String(64), default=None)
    default_project_id: Mapped[str | None] = mapped_column(String(36), default=None)
    fair_share: Mapped[float] = mapped_column(Float, default=1.0, server_default=text("1.0"))


class WebSession(Base):
    """A signed-in browser: ``id`` is the sha256 (hex) of its ``corral_session`` cookie's token."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)  # absolute end; idle ends come from last_seen_at
    last_seen_at: Mapped[datetime]


class Keypair(Base):
    __tablename__ = "keypairs"

    access_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_key: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), index=True)  # ALIVE | LOST | TERMINATED
    status_reason: Mapped[str] = mapped_column(Text, default="")
    resource_group: Mapped[str] = mapped_column(String(64), default="default")
    # The node's full resource model (cores, NUMA, memory, GPUs and topology):
    # what the allocator needs to place kernels here.
    capacity: Mapped[dict[str, Any]]
    available_slots: Mapped[dict[str, Any]]
    occupied_slots: Mapped[dict[str, Any]]
    images: Mapped[list[Any]]
    version: Mapped[str] = mapped_column(String(32), default="")
    first_contact: Mapped[datetime]
    last_heartbeat: Mapped[datetime]


class Session(Base):
    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_owner_created", "owner_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    access_key: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(16))  # interactive | batch
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    image: Mapped[str] = mapped_column(String(255))
    command: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    env: Mapped[dict[str, Any]]
    requested_slots: Mapped[dict[str, Any]]
    mounts: Mapped[list[Any]]
    resource_group: Mapped[str] = mapped_column(String(64), default="default")
    cluster_size: Mapped[int] = mapped_column(Integer, default=1)
    # single-node | multi-node (`corral.common.cluster`); the key its kernels ssh to each other with.
    cluster_mode: Mapped[str] = mapped_column(String(16), default="single-node", server_default="single-node")
    cluster_ssh_key: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    created_at: Mapped[datetime]
    scheduled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    terminated_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    # When the current status was entered: what the lifecycle timeouts count from.
    status_changed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # The last time someone used it (terminal, tunnel, app request): what idle culling will read.
    last_activity_at: Mapped[datetime | None] = mapped_column(nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The project the session counts against (its policy and fair share), None: the owner's own account.
    project_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True, default=None)
    # Explicit priority 0–100 (higher goes first where the group's queue policy uses it; preemption spares
    # the higher ones).
    priority: Mapped[int] = mapped_column(Integer, default=50, server_default=text("50"))

    kernels: Mapped[list["Kernel"]] = relationship(
        back_populates="session", order_by="Kernel.cluster_idx", lazy="selectin"
    )


class Kernel(Base):
    __tablename__ = "kernels"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    cluster_idx: Mapped[int] = mapped_column(Integer, default=0)
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"), nullable=True, index=True)
    container_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    requested_slots: Mapped[dict[str, Any]]
    allocation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_logs: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Indexed: the scheduler's snapshot reads the kernels that changed since its last pass.
    status_changed_at: Mapped[datetime] = mapped_column(index=True)
    # Reported by the agent once the kernel runs: its sshd's public host key, and the login name.
    ssh_host_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    ssh_user: Mapped[str | None] = mapped_column(String(64), nullable=True)

    session: Mapped[Session] = relationship(back_populates="kernels")


class SshKey(Base):
    """A user's public key: every session they own accepts it for SSH."""

    __tablename__ = "ssh_keys"
    __table_args__ = (UniqueConstraint("user_id", "fingerprint", name="uq_ssh_keys_user_fingerprint"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class SessionAccess(Base):
    """Who opened what in a session (terminal, tunnel, app), for the audit log."""

    __tablename__ = "session_access"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # terminal | tcp | http
    service: Mapped[str] = mapped_column(String(32), default="")
    at: Mapped[datetime]


class SessionStatusChange(Base):
    """Every session state transition, with its time and reason (DESIGN §3)."""

    __tablename__ = "session_status_history"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class VFolder(Base):
    """A persistent folder on a storage proxy's volume (DESIGN §6).

    Owned by a user (``owner_kind`` "user", ``owner_id`` the user's id) or by a
    project (``owner_kind`` "project", ``owner_id`` the project's id). Names
    are unique per owner among vfolders that are not in the trash.
    """

    __tablename__ = "vfolders"
    __table_args__ = (
        Index(
            "uq_vfolders_owner_name_ready", "owner_kind", "owner_id", "name", unique=True,
            sqlite_where=text("status = 'ready'"), postgresql_where=text("status = 'ready'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    owner_kind: Mapped[str] = mapped_column(String(16))  # user | project
    owner_id: Mapped[str] = mapped_column(String(64), index=True)
    creator_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    proxy: Mapped[str] = mapped_column(String(128))
    volume: Mapped[str] = mapped_column(String(64))
    vfid: Mapped[str] = mapped_column(String(64), unique=True)
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # ready | trashed
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    trashed_at: Mapped[datetime | None] = mapped_column(nullable=True)

    shares: Mapped[list["VFolderShare"]] = relationship(
        back_populates="vfolder", lazy="selectin", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def host(self) -> str:
        return f"{self.proxy}:{self.volume}"


class VFolderShare(Base):
    """Another user's access to a vfolder: ``ro`` or ``rw``."""

    __tablename__ = "vfolder_shares"

    vfolder_id: Mapped[str] = mapped_column(ForeignKey("vfolders.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    permission: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime]

    vfolder: Mapped[VFolder] = relationship(back_populates="shares")


class Project(Base):
    """A group of users sharing project vfolders; members are ``member`` or ``manager``."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    resource_policy: Mapped[str | None] = mapped_column(String(64), default=None)
    fair_share: Mapped[float] = mapped_column(Float, default=1.0, server_default=text("1.0"))

    members: Mapped[list["ProjectMember"]] = relationship(
        back_populates="project", lazy="selectin", cascade="all, delete-orphan", passive_deletes=True
    )


class ProjectMember(Base):
    """A user's membership of a project: ``member`` (uses its vfolders) or ``manager`` (also manages them and
    the members)."""

    __tablename__ = "project_members"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))  # member | manager
    created_at: Mapped[datetime]

    project: Mapped[Project] = relationship(back_populates="members")


class RequestNonce(Base):
    """The nonce of an accepted signed request, kept until its date leaves the skew window: a second request
    with it is a replay, whichever manager it reaches. Expired rows are purged by ``expires_at``."""

    __tablename__ = "request_nonces"

    access_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class SchedulerLeadership(Base):
    """The scheduler's fencing token (DESIGN §5): the epoch of the current leader. A manager takes the lead
    by raising ``epoch`` to its own lease's token; every reservation checks, in its own transaction, that the
    epoch is still the one it claimed, so a manager that has lost the lease cannot reserve anything."""

    __tablename__ = "scheduler_leadership"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str] = mapped_column(String(128))
    since: Mapped[datetime]


class ResourceGroup(Base):
    """A set of agents (each agent names its group in its config) with its own queue and rules.

    ``queue_policy``: fifo | lifo | drf | fair-share. ``backfill``: the first session in queue order that
    cannot start gets a reservation and later ones start only where they do not delay it (off: strict
    order, nothing overtakes it). ``scorers``: ``[{"name": ..., "weight": ...}]``. ``allowed_users`` /
    ``allowed_projects``: user / project ids that may use the group; both None: everyone.
    """

    __tablename__ = "resource_groups"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    queue_policy: Mapped[str] = mapped_column(String(16), default="fifo")
    backfill: Mapped[bool] = mapped_column(Boolean, default=True)
    preemption: Mapped[bool] = mapped_column(Boolean, default=False)
    scorers: Mapped[list[Any]]
    allowed_session_types: Mapped[list[Any]]
    allowed_users: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True, default=None)
    allowed_projects: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True, default=None)
    created_at: Mapped[datetime]


class ResourcePolicy(Base):
    """Limits a user or a project is held to; None (or a slot left out of ``max_slots``): no limit.

    ``max_slots`` holds totals over the holder's active sessions: ``cpu`` (cores), ``mem`` (bytes),
    ``cuda.device`` (whole GPUs) and ``cuda.shares`` (GPUs counted by share: 0.25 of a GPU is 0.25).
    """

    __tablename__ = "resource_policies"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    max_concurrent_sessions: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    max_pending_sessions: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    max_slots: Mapped[dict[str, Any]]
    max_cluster_size: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    max_session_lifetime_s: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    idle_timeout_s: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    created_at: Mapped[datetime]
