"""Parallel metadata walk: usage and recursive listing with many threads.

On a NAS every ``readdir``/``lstat`` is a network round trip, so a sequential
tool (``du``, ``find``) spends its life waiting. Here N threads share a pool of
directories to scan; each scans one directory with ``os.scandir`` (which drops
the GIL in the syscalls), queues its subdirectories for whoever is idle and
merges its counts once per directory.

Directories are opened with ``openat(parent_fd, name, O_NOFOLLOW|O_DIRECTORY)``
from their parent's descriptor, never by path, so a symlink swapped in during
the walk is not followed out of the tree. A parent's fd is kept open (reference
counted) until all its subdirectories have been opened; the pool is taken LIFO
so the walk stays mostly depth-first and the number of open fds stays small.

Totals follow ``du -s -B1`` (``disk_bytes``: st_blocks of every entry, the root
included, hard links once) and ``find | wc -l`` (``entries`` + 1 for the root).
"""
from __future__ import annotations

import asyncio
import logging
import os
import stat as stat_mod
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Callable

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
DEFAULT_WORKERS = 16


@dataclass
class WalkTotals:
    files: int = 0
    dirs: int = 0  # below the root
    symlinks: int = 0
    others: int = 0
    bytes: int = 0  # apparent size of regular files, hard links once
    disk_bytes: int = 0  # allocated blocks of everything (like du -s -B1)
    errors: int = 0

    @property
    def entries(self) -> int:
        return self.files + self.dirs + self.symlinks + self.others

    def add(self, other: "WalkTotals") -> None:
        self.files += other.files
        self.dirs += other.dirs
        self.symlinks += other.symlinks
        self.others += other.others
        self.bytes += other.bytes
        self.disk_bytes += other.disk_bytes
        self.errors += other.errors

    def to_json(self) -> dict[str, int]:
        doc = asdict(self)
        doc["entries"] = self.entries
        return doc


@dataclass(frozen=True)
class WalkEntry:
    """One entry of a recursive listing; ``path`` is relative to the walk root."""

    path: str
    type: str
    size: int
    mtime: float

    def to_json(self) -> list[object]:
        return [self.path, self.type, self.size, self.mtime]


EntrySink = Callable[[list[WalkEntry]], None]


class _OpenDir:
    """A directory fd shared by the scan of itself and the opens of its children."""

    __slots__ = ("fd", "holds")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.holds = 1


class WalkCancelled(Exception):
    pass


class ParallelWalker:
    """Walk the tree under ``root_fd`` (which the walker takes over and closes)."""

    def __init__(
        self,
        root_fd: int,
        *,
        workers: int = DEFAULT_WORKERS,
        entry_sink: EntrySink | None = None,
        stat_entries: bool = True,
    ) -> None:
        self._root_fd = root_fd
        # Without stat, a listing costs one readdir per directory (types come from
        # d_type); sizes and byte totals are then 0. Usage always stats.
        self._stat_entries = stat_entries
        self._workers = max(1, workers)
        self._sink = entry_sink
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        # (parent, name, relative path); parent None means the root itself.
        self._pool: deque[tuple[_OpenDir | None, str, str]] = deque()
        self._outstanding = 0
        self._seen_inodes: set[tuple[int, int]] = set()
        self._totals = WalkTotals()
        self._stopped = threading.Event()
        self._failure: BaseException | None = None

    # -- public ----------------------------------------------------------------

    def snapshot(self) -> WalkTotals:
        with self._lock:
            return WalkTotals(**asdict(self._totals))

    def cancel(self) -> None:
        self._stopped.set()
        with self._wakeup:
            self._wakeup.notify_all()

    @property
    def cancelled(self) -> bool:
        return self._stopped.is_set()

    def run(self) -> WalkTotals:
        """Blocking walk; returns the totals (raises WalkCancelled if cancelled)."""
        root = _OpenDir(self._root_fd)
        try:
            st = os.fstat(root.fd)
            self._totals.disk_bytes += st.st_blocks * 512
            self._pool.append((root, "", ""))
            self._outstanding = 1
            root.holds += 1  # the pool item above
            threads = [
                threading.Thread(target=self._work, name=f"walk-{i}", daemon=True)
                for i in range(self._workers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            while self._pool:  # left over after a cancel: give back their parents' fds
                parent, _, _ = self._pool.pop()
                if parent is not None:
                    self._release(parent)
            self._release(root)
        if self._failure is not None:
            raise self._failure
        if self._stopped.is_set():
            raise WalkCancelled()
        return self._totals

    async def run_async(self) -> WalkTotals:
        try:
            return await asyncio.to_thread(self.run)
        except asyncio.CancelledError:
            self.cancel()
            raise

    # -- threads -----------------------------------------------------------------

    def _release(self, opened: _OpenDir) -> None:
        with self._lock:
            opened.holds -= 1
            last = opened.holds == 0
        if last:
            os.close(opened.fd)

    def _work(self) -> None:
        try:
            while True:
                with self._wakeup:
                    while not self._pool and self._outstanding and not self._stopped.is_set():
                        self._wakeup.wait()
                    if self._stopped.is_set() or not self._outstanding:
                        self._wakeup.notify_all()
                        return
                    parent, name, rel = self._pool.pop()
                try:
                    self._visit(parent, name, rel)
                finally:
                    with self._wakeup:
                        self._outstanding -= 1
                        if not self._outstanding:
                            self._wakeup.notify_all()
        except WalkCancelled:
            self.cancel()  # the consumer of entries went away
        except BaseException as exc:  # a bug, not an I/O error: stop everyone
            log.exception("walker thread failed")
            self._failure = exc
            self.cancel()

    def _visit(self, parent: _OpenDir, name: str, rel: str) -> None:
        if name:
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=parent.fd)
            except OSError as exc:
                log.debug("cannot open %s: %s", rel, exc)
                self._release(parent)
                with self._lock:
                    self._totals.errors += 1
                return
            self._release(parent)
            here = _OpenDir(fd)
        else:
            here = parent  # the root: its hold for this item is released below
        try:
            self._scan(here, rel)
        finally:
            self._release(here)

    @staticmethod
    def _count_unstatted(
        entry: os.DirEntry[str], local: WalkTotals, subdirs: list[str], batch: list[WalkEntry] | None, prefix: str
    ) -> None:
        try:
            if entry.is_dir(follow_symlinks=False):
                kind = "dir"
                local.dirs += 1
                subdirs.append(entry.name)
            elif entry.is_symlink():
                kind = "symlink"
                local.symlinks += 1
            elif entry.is_file(follow_symlinks=False):
                kind = "file"
                local.files += 1
            else:
                kind = "other"
                local.others += 1
        except OSError:
            local.errors += 1
            return
        if batch is not None:
            batch.append(WalkEntry(prefix + entry.name, kind, 0, 0.0))

    def _scan(self, here: _OpenDir, rel: str) -> None:
        local = WalkTotals()
        subdirs: list[str] = []
        batch: list[WalkEntry] | None = [] if self._sink is not None else None
        hard_links: list[tuple[int, int, int, int]] = []
        prefix = rel + "/" if rel else ""
        try:
            with os.scandir(here.fd) as it:
                for entry in it:
                    if not self._stat_entries:
                        self._count_unstatted(entry, local, subdirs, batch, prefix)
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        local.errors += 1
                        continue
                    mode = st.st_mode
                    if stat_mod.S_ISDIR(mode):
                        local.dirs += 1
                        local.disk_bytes += st.st_blocks * 512
                        subdirs.append(entry.name)
                        kind = "dir"
                    else:
                        if stat_mod.S_ISREG(mode):
                            kind = "file"
                        elif stat_mod.S_ISLNK(mode):
                            kind = "symlink"
                        else:
                            kind = "other"
                        if st.st_nlink > 1:
                            hard_links.append((st.st_dev, st.st_ino, st.st_blocks * 512, st.st_size if kind == "file" else 0))
                        else:
                            local.disk_bytes += st.st_blocks * 512
                            if kind == "file":
                                local.bytes += st.st_size
                        if kind == "file":
                            local.files += 1
                        elif kind == "symlink":
                            local.symlinks += 1
                        else:
                            local.others += 1
                    if batch is not None:
                        batch.append(WalkEntry(prefix + entry.name, kind, st.st_size, st.st_mtime))
        except OSError as exc:
            log.debug("cannot scan %s: %s", rel, exc)
            local.errors += 1
        with self._wakeup:
            for dev, ino, disk, size in hard_links:
                if (dev, ino) not in self._seen_inodes:
                    self._seen_inodes.add((dev, ino))
                    local.disk_bytes += disk
                    local.bytes += size
            self._totals.add(local)
            if subdirs and not self._stopped.is_set():
                here.holds += len(subdirs)
                self._outstanding += len(subdirs)
                self._pool.extend((here, name, prefix + name) for name in subdirs)
                self._wakeup.notify(len(subdirs))
        if batch and self._sink is not None:
            self._sink(batch)
