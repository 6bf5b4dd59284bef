"""Quota checks at upload creation (tus Upload-Length) for backends without their own.

Usage is measured with the parallel walk and cached briefly, so a tree upload
of many files does not walk the vfolder once per file; finished uploads are
added to the cached figure and bytes of unfinished uploads are reserved.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from corral.common.errors import QuotaExceeded
from corral.common.slots import format_size

from .volumes import VolumeBackend

USAGE_CACHE_S = 10.0


@dataclass
class _CachedUsage:
    bytes: int
    measured_at: float


class UploadStoreLike(Protocol):
    """The one thing QuotaGuard needs from UploadStore."""

    def pending_bytes(self, volume: str, vfid: str) -> int: ...


class QuotaGuard:
    def __init__(self, volumes: dict[str, VolumeBackend], uploads: UploadStoreLike) -> None:
        self.volumes = volumes
        self.uploads = uploads
        self._usage: dict[tuple[str, str], _CachedUsage] = {}
        self._measuring: dict[tuple[str, str], asyncio.Lock] = {}
        self._admitting: dict[tuple[str, str], asyncio.Lock] = {}

    def admission(self, volume: str, vfid: str) -> asyncio.Lock:
        """Hold while checking an upload against the quota and reserving its bytes."""
        return self._admitting.setdefault((volume, vfid), asyncio.Lock())

    async def usage_bytes(self, volume: str, vfid: str) -> int:
        key = (volume, vfid)
        lock = self._measuring.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._usage.get(key)
            if cached is None or time.monotonic() - cached.measured_at > USAGE_CACHE_S:
                totals = await self.volumes[volume].usage(vfid)
                cached = _CachedUsage(totals.bytes, time.monotonic())
                self._usage[key] = cached
            return cached.bytes

    def forget(self, volume: str, vfid: str) -> None:
        self._usage.pop((volume, vfid), None)

    def add(self, volume: str, vfid: str, nbytes: int) -> None:
        cached = self._usage.get((volume, vfid))
        if cached is not None:
            cached.bytes += nbytes

    async def effective_quota(self, volume: str, vfid: str, token_quota: int | None) -> int | None:
        quotas = [q for q in (await self.volumes[volume].get_quota(vfid), token_quota) if q is not None]
        return min(quotas) if quotas else None

    async def check_upload(self, volume: str, vfid: str, length: int, token_quota: int | None) -> None:
        quota = await self.effective_quota(volume, vfid, token_quota)
        if quota is None:
            return
        used = await self.usage_bytes(volume, vfid)
        reserved = self.uploads.pending_bytes(volume, vfid)
        if used + reserved + length > quota:
            raise QuotaExceeded(
                f"uploading {format_size(length)} would exceed the vfolder quota of {format_size(quota)} "
                f"({format_size(used)} used, {format_size(reserved)} in unfinished uploads)",
                quota_bytes=quota,
                usage_bytes=used,
                reserved_bytes=reserved,
                requested_bytes=length,
            )
