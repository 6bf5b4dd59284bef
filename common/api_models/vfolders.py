"""Vfolders, their shares and storage tokens, and the storage hosts they live on."""
from __future__ import annotations

from typing import Annotated

from typing_extensions import NotRequired, TypedDict

from .base import OPTIONAL_KEY, ApiModel, Timestamp, one_of

Permission = Annotated[str, one_of("ro", "rw")]


class StorageHost(TypedDict):
    """A proxy's volume; an unreachable proxy is one entry with ``volume`` null and ``error``."""

    host: str
    proxy: str
    volume: str | None
    backend: NotRequired[str | None]
    capabilities: NotRequired[list[str]]
    default: NotRequired[bool]
    error: NotRequired[str]


class StorageHostList(ApiModel):
    items: list[StorageHost] = []


class VfolderShare(TypedDict):
    username: str
    permission: Permission


class VfolderUsage(TypedDict):
    """As the storage proxy counted it; ``bytes`` apparent size, ``disk_bytes`` allocated (du -s -B1)."""

    bytes: int | None
    files: int | None
    dirs: int | None
    disk_bytes: int | None
    entries: int | None


class Vfolder(ApiModel):
    """A vfolder as its caller sees it.

    ``shared_with`` comes only to those who manage it; ``usage`` with
    ``over_quota`` (or ``usage`` null and ``usage_error``) only from
    ``GET /vfolders/{ref}``.
    """

    id: str = ""
    name: str = ""
    owner: str = ""
    owner_kind: Annotated[str, one_of("user", "project")] = "user"
    project: str | None = None
    creator: str = ""
    host: str = ""
    vfid: str = ""
    quota_bytes: int | None = None
    status: Annotated[str, one_of("ready", "trashed", "purged")] = ""
    permission: Permission = ""
    is_owner: bool = False
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    trashed_at: Timestamp | None = None
    shared_with: Annotated[list[VfolderShare], OPTIONAL_KEY] = []
    usage: Annotated[VfolderUsage | None, OPTIONAL_KEY] = None
    over_quota: Annotated[bool, OPTIONAL_KEY] = False
    usage_error: Annotated[str, OPTIONAL_KEY] = ""

    @property
    def usage_bytes(self) -> int | None:
        return self.usage.get("bytes") if self.usage else None


class VfolderList(ApiModel):
    items: list[Vfolder] = []


class VfolderToken(ApiModel):
    """What the storage proxy's file API needs: where it is and a short-lived token."""

    client_url: str = ""
    token: str = ""
    vfid: str = ""
    vfolder_id: str = ""
    name: str = ""
    permission: Permission = ""
    quota_bytes: int | None = None
    expires_at: Timestamp | None = None
