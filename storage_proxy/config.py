"""Storage proxy configuration (TOML + ``CORRAL_STORAGE_*`` environment variables).

Example::

    manager_secret = "…"         # shared with the manager (Bearer token)
    jwt_secret = "…"             # shared with the manager (signs vfolder tokens)
    proxy_name = "storage-1"

    [manager_api]
    host = "127.0.0.1"
    port = 6021

    [client_api]
    host = "0.0.0.0"
    port = 6022
    public_url = "https://storage-1.example.org:6022"

    [[volumes]]
    name = "local"
    backend = "vfs"
    path = "/srv/corral/volumes/local"

    [etcd]
    endpoints = ["127.0.0.1:2379"]
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from corral.common.config import StrictModel, load_config

ENV_PREFIX = "CORRAL_STORAGE_"


class ListenConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    # URL others should use to reach this API (advertised in etcd); derived if unset.
    public_url: str | None = None

    def advertised_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.getfqdn()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


class VolumeConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    backend: str = "vfs"
    path: Path
    options: dict[str, Any] = Field(default_factory=dict)


class UploadConfig(StrictModel):
    # Incomplete uploads untouched for this long are purged (tus expiration).
    expiry_s: int = Field(default=24 * 3600, gt=0)
    # Largest single file accepted (tus Max-Size); 0 = unlimited.
    max_size: int = Field(default=0, ge=0)
    purge_interval_s: int = Field(default=600, gt=0)


class EtcdConfig(StrictModel):
    endpoints: list[str] = Field(default_factory=lambda: ["127.0.0.1:2379"], min_length=1)
    namespace: str = "/corral"
    lease_ttl_s: int = Field(default=15, ge=5)
    username: str | None = None
    password: str | None = None


class StorageProxyConfig(StrictModel):
    manager_secret: str = Field(min_length=16)
    jwt_secret: str = Field(min_length=16)
    proxy_name: str = Field(default_factory=socket.gethostname, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    manager_api: ListenConfig = Field(default_factory=lambda: ListenConfig(port=6021))
    client_api: ListenConfig = Field(default_factory=lambda: ListenConfig(host="0.0.0.0", port=6022))
    volumes: list[VolumeConfig] = Field(min_length=1)
    # Sessions run as this uid/gid: what the proxy creates is chowned to it (when root).
    owner_uid: int = 1000
    owner_gid: int = 1000
    # Threads for the parallel metadata walks (usage, tree listing).
    walk_workers: int = Field(default=16, ge=1, le=256)
    upload: UploadConfig = Field(default_factory=UploadConfig)
    # Measure vfolders with a quota this often; those at/over it become read-only for the file API. 0 = off.
    quota_check_interval_s: float = Field(default=60.0, ge=0)
    etcd: EtcdConfig | None = None
    log_level: str = "INFO"

    @field_validator("volumes")
    @classmethod
    def _unique_volume_names(cls, volumes: list[VolumeConfig]) -> list[VolumeConfig]:
        names = [v.name for v in volumes]
        if len(set(names)) != len(names):
            raise ValueError("volume names must be unique")
        return volumes

    @model_validator(mode="after")
    def _distinct_secrets(self) -> "StorageProxyConfig":
        if self.manager_secret == self.jwt_secret:
            raise ValueError("manager_secret and jwt_secret must differ")
        return self

    def shares_one_listener(self) -> bool:
        return (self.manager_api.host, self.manager_api.port) == (self.client_api.host, self.client_api.port)


def load_storage_config(path: str | os.PathLike[str] | None, **kwargs: Any) -> StorageProxyConfig:
    return load_config(StorageProxyConfig, path, env_prefix=ENV_PREFIX, **kwargs)
