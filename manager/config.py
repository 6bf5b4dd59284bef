"""Manager configuration (TOML file + ``CORRAL_MANAGER_*`` env vars)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from corral.common.config import StrictModel, load_config
from corral.common.resource_groups import DEFAULT_SCORERS, GROUP_NAME_RE, NAME_RULE, scorer_strings

ENV_PREFIX = "CORRAL_MANAGER_"


class ApiConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class DatabaseConfig(StrictModel):
    # sqlite:///PATH (embedded default) or postgresql://user:pass@host/db
    url: str = "sqlite:///corral.db"


class EtcdConfig(StrictModel):
    # Empty: single-manager mode (no etcd). "host:port" entries otherwise.
    endpoints: list[str] = []
    prefix: str = "/corral"


class ScorerConfig(StrictModel):
    name: Literal["topology", "concentrated", "dispersed", "first-fit"]
    weight: float = Field(1.0, gt=0)


class GroupConfig(StrictModel):
    """``[scheduler.groups.NAME]``: a resource group the manager creates at start when it has no row yet
    (an existing group, and so an admin's later changes, is never overwritten)."""

    description: str = ""
    queue_policy: Literal["fifo", "lifo", "drf", "fair-share"] = "fifo"
    backfill: bool = True
    preemption: bool = False
    # Tables ({name = "topology", weight = 2}) or "NAME[:WEIGHT]" strings.
    scorers: list[ScorerConfig] = Field(default_factory=lambda: [ScorerConfig(**s) for s in DEFAULT_SCORERS],
                                        min_length=1)
    allowed_session_types: list[Literal["interactive", "batch"]] = Field(["interactive", "batch"], min_length=1)
    # Usernames / project names (both unset: everyone). Names unknown at start are left out, with a warning.
    allowed_users: list[str] | None = None
    allowed_projects: list[str] | None = None

    @field_validator("scorers", mode="before")
    @classmethod
    def _scorer_strings(cls, value: Any) -> Any:
        return scorer_strings(value)


class SchedulerConfig(StrictModel):
    # Stage names, resolved through corral.manager.scheduler.registry.
    queue: str = "fifo"
    filter: str = "fits"
    # "topology" (GPU requests by the allocator's objective, else first-fit) or "first-fit".
    score: str = "topology"
    interval_s: float = Field(1.0, gt=0)  # periodic pass besides event triggers
    # An agent the bind stage could not reach is skipped this long (its sessions wait in the queue).
    unreachable_backoff_s: float = Field(5.0, ge=0)
    # Resource groups to create at start when missing (agents' groups are also created when they register).
    groups: dict[str, GroupConfig] = {}
    # fair-share: usage half-life, and the weights of the fair-share factor, age and explicit priority.
    fair_share_half_life_s: float = Field(7 * 24 * 3600.0, gt=0)
    fair_share_weight: float = Field(1000.0, ge=0)
    age_weight: float = Field(100.0, ge=0)
    age_cap_s: float = Field(7 * 24 * 3600.0, gt=0)
    priority_weight: float = Field(100.0, ge=0)
    # Backfill: how long a running session is assumed to last when it has no lifetime limit and its
    # owner no finished sessions to learn from.
    default_runtime_s: float = Field(4 * 3600.0, gt=0)
    # The leader's cluster snapshot is rebuilt from the database and compared this often.
    snapshot_verify_s: float = Field(60.0, gt=0)

    @field_validator("groups")
    @classmethod
    def _group_names(cls, value: dict[str, GroupConfig]) -> dict[str, GroupConfig]:
        for name in value:
            if not GROUP_NAME_RE.match(name):
                raise ValueError(f"group name {name!r}: must be {NAME_RULE}")
        return value


class LifecycleConfig(StrictModel):
    """``[lifecycle]``: how long each intermediate session state may last before the leader acts.

    The leader checks every ``interval_s``, and once right after it takes the lead (when sessions
    that a crashed manager left SCHEDULED are bound at once).
    """

    interval_s: float = Field(5.0, gt=0)
    # SCHEDULED this long with no bind under way: bind again.
    bind_retry_s: float = Field(10.0, gt=0)
    # PREPARING this long: send the (idempotent) creation to the agent again, at most this often.
    prepare_retry_s: float = Field(30.0, gt=0)
    # PREPARING this long (image pulls included): the session fails with that reason.
    prepare_timeout_s: float = Field(1800.0, gt=0)
    # TERMINATING this long: ask the agent to remove the containers again, at most this often.
    terminate_retry_s: float = Field(15.0, gt=0)
    # RUNNING on an agent that is LOST for this long: the session fails; back in time, it carries on.
    lost_grace_s: float = Field(300.0, ge=0)
    # Resource policies' idle timeout: a session's reason warns this long before it is terminated (at most
    # the last fifth of the timeout).
    idle_warning_s: float = Field(300.0, ge=0)


class AgentsConfig(StrictModel):
    cluster_secret: str = ""
    heartbeat_timeout_s: float = Field(15.0, gt=0)


class StorageProxyEntry(StrictModel):
    """One storage proxy the manager talks to (``[[storage.proxies]]``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    manager_url: str  # its manager API (Bearer manager_secret)
    client_url: str  # its client API, handed to clients with their vfolder tokens
    # Empty: the [storage] section's defaults.
    manager_secret: str = ""
    jwt_secret: str = ""


class StorageConfig(StrictModel):
    """``[storage]``: where vfolders live.

    Proxies come from ``proxies`` and, when etcd is configured, from what the
    proxies register under ``<etcd.prefix>/storage/``; those use the secrets
    given here.
    """

    proxies: list[StorageProxyEntry] = []
    manager_secret: str = ""
    jwt_secret: str = ""
    # "proxy:volume" new vfolders go to unless the request names one; empty:
    # the first volume of the first proxy.
    default_host: str = ""
    token_ttl_s: int = Field(900, ge=30, le=24 * 3600)
    request_timeout_s: float = Field(30.0, gt=0)
    discovery_ttl_s: float = Field(5.0, gt=0)  # how long the etcd view is reused


class WebConfig(StrictModel):
    """``[web]``: the web UI's sign-in (``POST /api/v1/auth/login`` and its ``corral_session`` cookie).

    The failed-login limit is counted in memory, per manager: with several managers behind a
    balancer, an attacker gets ``login_max_failures`` per manager and window.
    """

    # A web session ends after this long without a request, and this long after sign-in in any case.
    session_idle_s: float = Field(12 * 3600.0, gt=0)
    session_max_s: float = Field(7 * 24 * 3600.0, gt=0)
    # Failed logins allowed per username and per client address within the sliding window.
    login_max_failures: int = Field(10, ge=1)
    login_window_s: float = Field(300.0, gt=0)


class ManagerConfig(StrictModel):
    id: str = "manager-1"
    api: ApiConfig = ApiConfig()
    db: DatabaseConfig = DatabaseConfig()
    etcd: EtcdConfig = EtcdConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    agents: AgentsConfig = AgentsConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    storage: StorageConfig = StorageConfig()
    web: WebConfig = WebConfig()
    default_image: str = "corral/python:latest"
    # Written by `corral up` / bootstrap: the first admin's credentials.
    admin_access_key: str = ""
    admin_secret_key: str = ""


def load_manager_config(path: Path | None, **overrides: object) -> ManagerConfig:
    return load_config(ManagerConfig, path, env_prefix=ENV_PREFIX, overrides=overrides or None)
