"""Quota checks at upload creation (tus Upload-Length) for backends without their own,
and the periodic usage check (``quota_check_interval_s``) that makes a vfolder
found at or over its quota read-only for the file API (uploads, mkdir; deleting
and moving stay allowed so it can get under again) with a reason. Sessions
write straight to the directory, which the proxy cannot stop on a plain
filesystem: the manager mounts such a vfolder read-only at the next session
start and says why.

Usage is measured with the parallel walk and cached briefly, so a tree upload
of many files does not walk the vfolder once per file; finished uploads are
added to the cached figure and bytes of unfinished uploads are reserved.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from corral.common.errors import QuotaExceeded
from corral.common.slots import format_size

from .volumes import VolumeBackend

log = logging.getLogger(__name__)

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
        # (volume, vfid) -> reason, from the last periodic check (check_all).
        self.over_quota: dict[tuple[str, str], str] = {}

    # Periodic check ---------------------------------------------------------------
    def over_quota_reason(self, volume: str, vfid: str) -> str:
        """Why the vfolder is read-only for the file API ("" when it is not): the last periodic check found it over quota."""
        return self.over_quota.get((volume, vfid), "")

    def refuse_writes_if_over(self, volume: str, vfid: str) -> None:
        reason = self.over_quota_reason(volume, vfid)
        if reason:
            raise QuotaExceeded(f"{reason}; delete files (or raise the quota) to write again")

    async def check_all(self) -> dict[tuple[str, str], str]:
        """Measure every vfolder that has a quota; mark those at or over it read-only (for the file API)."""
        over: dict[tuple[str, str], str] = {}
        for name, volume in self.volumes.items():
            for vfid in await volume.quota_vfids():
                try:
                    quota = await volume.get_quota(vfid)
                    if quota is None:
                        continue
                    used = (await volume.usage(vfid)).bytes
                except Exception as exc:  # noqa: BLE001 - one vfolder's trouble must not stop the sweep
                    log.warning("quota check of %s on %s failed: %s", vfid, name, exc)
                    continue
                self._usage[(name, vfid)] = _CachedUsage(used, time.monotonic())
                if used >= quota:
                    over[(name, vfid)] = (
                        f"vfolder is over its quota ({format_size(used)} of {format_size(quota)}): read-only"
                    )
        for key in over.keys() - self.over_quota.keys():
            log.warning("vfolder %s on %s: %s", key[1], key[0], over[key])
        for key in self.over_quota.keys() - over.keys():
            log.info("vfolder %s on %s is within its quota again", key[1], key[0])
        self.over_quota = over
        return over

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
        self.over_quota.pop((volume, vfid), None)  # quota changed or vfolder gone: the next check decides

    def add(self, volume: str, vfid: str, nbytes: int) -> None:
        cached = self._usage.get((volume, vfid))
        if cached is not None:
            cached.bytes += nbytes

    async def effective_quota(self, volume: str, vfid: str, token_quota: int | None) -> int | None:
        quotas = [q for q in (await self.volumes[volume].get_quota(vfid), token_quota) if q is not None]
        return min(quotas) if quotas else None

    async def check_upload(self, volume: str, vfid: str, length: int, token_quota: int | None) -> None:
        self.refuse_writes_if_over(volume, vfid)
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
