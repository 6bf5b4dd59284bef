"""The narrow interface every volume backend implements.

A volume is a backend plus a root path; vfolders are directories inside it.
A new backend (NFS with server-side quotas, CephFS, XFS project quotas) is one
new file implementing the abstract methods below; file operations inside a
vfolder and the metadata walk come for free from the confined helpers, and a
backend with native accounting (CephFS rstats, XFS quota reports) can override
``usage``.
"""
from __future__ import annotations

import abc
import functools
import os
import re
from pathlib import Path
from typing import ClassVar

from corral.common.errors import InvalidRequest

from ..config import VolumeConfig
from ..files import Owner, VfolderFiles
from ..paths import PathParts
from ..walk import EntrySink, ParallelWalker, WalkTotals

VFID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
# Hidden per-volume directory for the proxy's own state (staging, quotas, trash).
STATE_DIR_NAME = ".corral"

UsageReport = WalkTotals
LOCAL_WALK_WORKERS = 2
_NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "fuse", "glusterfs", "lustre", "beegfs", "gpfs", "9p", "afs", "wekafs")


def filesystem_type(path: Path) -> str | None:
    """Type of the filesystem holding ``path`` (from /proc/self/mountinfo), if known."""
    try:
        target = os.path.realpath(path)
        best, best_type = "", None
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                fields = line.split()
                sep = fields.index("-")
                mount_point = fields[4].replace("\\040", " ")
                if (target == mount_point or target.startswith(mount_point.rstrip("/") + "/")) and len(mount_point) >= len(best):
                    best, best_type = mount_point, fields[sep + 1]
        return best_type
    except (OSError, ValueError, IndexError):
        return None


def is_network_filesystem(fs_type: str) -> bool:
    return fs_type.split(".")[0] in _NETWORK_FS


def check_vfid(vfid: str) -> str:
    if not isinstance(vfid, str) or not VFID_PATTERN.match(vfid):
        raise InvalidRequest("vfid must be 1-128 characters of [A-Za-z0-9_-], not starting with '-' or '_'", vfid=str(vfid))
    return vfid


class VolumeBackend(abc.ABC):
    backend_name: ClassVar[str]
    # Features the manager may rely on: "quota", "clone", "fast-usage"…
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: VolumeConfig, *, owner: Owner, walk_workers: int) -> None:
        self.config = config
        self.name = config.name
        self.root = Path(config.path)
        self.owner = owner
        self.walk_workers = walk_workers

    # -- lifecycle -------------------------------------------------------------

    async def init(self) -> None:
        """Prepare the volume (create state dirs); called once at start."""
        os.makedirs(self.staging_dir, exist_ok=True)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR_NAME

    @property
    def staging_dir(self) -> Path:
        """Incomplete uploads; on the same filesystem so completion is a rename."""
        return self.state_dir / "uploads"

    # -- vfolders ----------------------------------------------------------------

    @abc.abstractmethod
    def mount_path(self, vfid: str) -> Path:
        """Host path of the vfolder, for the agent to bind-mount."""

    @abc.abstractmethod
    async def create_vfolder(self, vfid: str, *, quota_bytes: int | None = None) -> None: ...

    @abc.abstractmethod
    async def delete_vfolder(self, vfid: str) -> None: ...

    @abc.abstractmethod
    async def clone_vfolder(self, src_vfid: str, dst_vfid: str) -> None: ...

    @abc.abstractmethod
    async def get_quota(self, vfid: str) -> int | None: ...

    @abc.abstractmethod
    async def set_quota(self, vfid: str, quota_bytes: int | None) -> None: ...

    async def quota_vfids(self) -> list[str]:
        """The vfolders that have a quota (for the periodic check); none by default."""
        return []

    async def exists(self, vfid: str) -> bool:
        return self.mount_path(check_vfid(vfid)).is_dir()

    # -- inside a vfolder -----------------------------------------------------------

    def files(self, vfid: str) -> VfolderFiles:
        return VfolderFiles(self.mount_path(check_vfid(vfid)), self.owner)

    def walker(
        self, vfid: str, parts: PathParts = (), *, entry_sink: EntrySink | None = None, stat_entries: bool = True
    ) -> ParallelWalker:
        """A parallel walker over ``parts`` inside the vfolder (opened confined)."""
        with self.files(vfid).directory(parts) as fd:
            root_fd = os.dup(fd)
        return ParallelWalker(root_fd, workers=self.effective_walk_workers, entry_sink=entry_sink, stat_entries=stat_entries)

    @functools.cached_property
    def effective_walk_workers(self) -> int:
        """Many threads pay off where each stat is a round trip; on a local disk
        the walk is CPU-bound and extra threads only fight over the GIL."""
        configured = self.config.options.get("walk_workers")
        if configured:
            return int(configured)
        fs_type = filesystem_type(self.root)
        if fs_type is None or is_network_filesystem(fs_type):
            return self.walk_workers
        return min(self.walk_workers, LOCAL_WALK_WORKERS)

    async def usage(self, vfid: str) -> UsageReport:
        return await self.walker(vfid).run_async()

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "backend": self.backend_name,
            "path": str(self.root),
            "capabilities": sorted(self.capabilities),
        }
