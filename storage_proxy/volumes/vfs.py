"""``vfs``: vfolders are plain directories under the volume root.

Works on any mounted filesystem (local disk, NFS, CephFS, sshfs). Quotas are
kept by the proxy (a small JSON file per vfolder) and enforced when uploads
are created; the filesystem itself does not enforce them.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from pathlib import Path

from corral.common.errors import BackendError, Conflict, NotFound

from ..files import DIR_MODE
from .base import VolumeBackend, check_vfid

log = logging.getLogger(__name__)


class VfsVolume(VolumeBackend):
    backend_name = "vfs"
    capabilities = frozenset({"quota", "clone"})

    async def init(self) -> None:
        await asyncio.to_thread(self._init_dirs)

    def _init_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in (self.staging_dir, self._quota_dir, self._trash_dir):
            sub.mkdir(parents=True, exist_ok=True)
        # Leftovers of deletes interrupted by a restart.
        for leftover in self._trash_dir.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)

    @property
    def _quota_dir(self) -> Path:
        return self.state_dir / "quotas"

    @property
    def _trash_dir(self) -> Path:
        return self.state_dir / "trash"

    def mount_path(self, vfid: str) -> Path:
        return self.root / check_vfid(vfid)

    def _require(self, vfid: str) -> Path:
        path = self.mount_path(vfid)
        if not path.is_dir() or path.is_symlink():
            raise NotFound(f"vfolder {vfid} does not exist on volume {self.name}", vfid=vfid, volume=self.name)
        return path

    async def create_vfolder(self, vfid: str, *, quota_bytes: int | None = None) -> None:
        path = self.mount_path(vfid)

        def create() -> None:
            try:
                os.mkdir(path, DIR_MODE)
            except FileExistsError:
                raise Conflict(f"vfolder {vfid} already exists on volume {self.name}", vfid=vfid) from None
            if os.geteuid() == 0:
                os.chown(path, self.owner.uid, self.owner.gid)

        await asyncio.to_thread(create)
        await self.set_quota(vfid, quota_bytes)
        log.info("created vfolder %s on %s", vfid, self.name)

    async def delete_vfolder(self, vfid: str) -> None:
        path = self._require(vfid)
        # Rename first so the vfolder disappears at once, then remove at leisure.
        trash = self._trash_dir / f"{vfid}.{time.time_ns()}"
        await asyncio.to_thread(os.rename, path, trash)
        await asyncio.to_thread(self._quota_file(vfid).unlink, missing_ok=True)
        await asyncio.to_thread(shutil.rmtree, trash, ignore_errors=True)
        log.info("deleted vfolder %s on %s", vfid, self.name)

    async def clone_vfolder(self, src_vfid: str, dst_vfid: str) -> None:
        src = self._require(src_vfid)
        dst = self.mount_path(dst_vfid)
        if dst.exists():
            raise Conflict(f"vfolder {dst_vfid} already exists on volume {self.name}", vfid=dst_vfid)
        tmp = self._trash_dir / f"clone-{dst_vfid}.{time.time_ns()}"
        # cp -a keeps owners, modes, times and links; reflinks make it instant on XFS/btrfs.
        proc = await asyncio.create_subprocess_exec(
            "cp", "-a", "--reflink=auto", "--", str(src), str(tmp),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            await asyncio.to_thread(shutil.rmtree, tmp, ignore_errors=True)
            raise BackendError(f"clone failed: {err.decode(errors='replace').strip()}")
        try:
            await asyncio.to_thread(os.rename, tmp, dst)
        except OSError:
            await asyncio.to_thread(shutil.rmtree, tmp, ignore_errors=True)
            raise Conflict(f"vfolder {dst_vfid} already exists on volume {self.name}") from None
        await self.set_quota(dst_vfid, await self.get_quota(src_vfid))
        log.info("cloned vfolder %s to %s on %s", src_vfid, dst_vfid, self.name)

    def _quota_file(self, vfid: str) -> Path:
        return self._quota_dir / f"{check_vfid(vfid)}.json"

    async def quota_vfids(self) -> list[str]:
        def scan() -> list[str]:
            return sorted(p.stem for p in self._quota_dir.glob("*.json") if self.mount_path(p.stem).is_dir())

        return await asyncio.to_thread(scan)

    async def get_quota(self, vfid: str) -> int | None:
        self._require(vfid)
        try:
            text = await asyncio.to_thread(self._quota_file(vfid).read_text)
        except FileNotFoundError:
            return None
        value = json.loads(text).get("quota_bytes")
        return int(value) if value is not None else None

    async def set_quota(self, vfid: str, quota_bytes: int | None) -> None:
        self._require(vfid)
        path = self._quota_file(vfid)
        if quota_bytes is None:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            return
        tmp = path.with_suffix(".tmp")
        await asyncio.to_thread(tmp.write_text, json.dumps({"quota_bytes": int(quota_bytes)}))
        await asyncio.to_thread(os.replace, tmp, path)
