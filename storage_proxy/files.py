"""File operations inside one vfolder, done with directory file descriptors.

Every operation starts from an fd of the vfolder root and walks components with
``openat(..., O_NOFOLLOW | O_DIRECTORY)``; the last component is acted on with
``*at`` calls that do not follow symlinks either (``unlinkat``, ``renameat``,
``fstatat(AT_SYMLINK_NOFOLLOW)``, ``openat(O_NOFOLLOW)``). So no path string is
ever resolved by the kernel from ``/``, and a symlink — planted before or
during the request — can never lead outside the vfolder.

All methods block; call them through ``asyncio.to_thread``.
"""
from __future__ import annotations

import contextlib
import errno
import heapq
import logging
import os
import shutil
import stat as stat_mod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from corral.common.errors import Conflict, InvalidRequest, NotFound

from .errors import PathRejected
from .paths import PathParts, join_parts

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
DIR_MODE = 0o755
FILE_MODE = 0o644


@dataclass(frozen=True)
class Owner:
    """Who owns what we create (sessions run as this uid/gid)."""

    uid: int
    gid: int

    def apply(self, name: str, dir_fd: int) -> None:
        # Only root may give files away; unprivileged test runs skip it.
        if os.geteuid() == 0:
            os.chown(name, self.uid, self.gid, dir_fd=dir_fd, follow_symlinks=False)

    def apply_fd(self, fd: int) -> None:
        if os.geteuid() == 0:
            os.fchown(fd, self.uid, self.gid)


@dataclass(frozen=True)
class EntryInfo:
    name: str
    type: str  # "file" | "dir" | "symlink" | "other"
    size: int
    mtime: float
    mode: int
    target: str | None = None

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "name": self.name,
            "type": self.type,
            "size": self.size,
            "mtime": self.mtime,
            "mode": stat_mod.S_IMODE(self.mode),
        }
        if self.target is not None:
            doc["target"] = self.target
        return doc


@dataclass(frozen=True)
class DirPage:
    entries: list[EntryInfo]
    next_cursor: str | None


def entry_type(mode: int) -> str:
    if stat_mod.S_ISREG(mode):
        return "file"
    if stat_mod.S_ISDIR(mode):
        return "dir"
    if stat_mod.S_ISLNK(mode):
        return "symlink"
    return "other"


def _describe(parts: PathParts) -> str:
    return "/" + join_parts(parts)


def translate_os_error(exc: OSError, parts: PathParts) -> Exception:
    where = _describe(parts)
    if exc.errno == errno.ENOENT:
        return NotFound(f"{where}: no such file or directory", path=where)
    if exc.errno == errno.ELOOP:
        return PathRejected(f"{where}: a component is a symbolic link", path=where)
    if exc.errno == errno.ENOTDIR:
        return Conflict(f"{where}: a component is not a directory", path=where)
    if exc.errno == errno.EISDIR:
        return Conflict(f"{where}: is a directory", path=where)
    if exc.errno == errno.EEXIST:
        return Conflict(f"{where}: already exists", path=where)
    if exc.errno == errno.ENOTEMPTY:
        return Conflict(f"{where}: directory is not empty", path=where)
    if exc.errno == errno.EINVAL:
        return InvalidRequest(f"{where}: invalid operation", path=where)
    if exc.errno == errno.ENAMETOOLONG:
        return PathRejected(f"{where}: name too long", path=where)
    return exc


def _open_dir_error(exc: OSError, name: str, dir_fd: int, parts: PathParts) -> Exception:
    # openat(O_DIRECTORY|O_NOFOLLOW) on a symlink says ENOTDIR on Linux, not ELOOP:
    # look at what is there so that a symlink is reported as the escape it is.
    if exc.errno in (errno.ENOTDIR, errno.ELOOP):
        try:
            if stat_mod.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                return PathRejected(f"{_describe(parts)}: is a symbolic link; links are not followed", path=_describe(parts))
        except OSError:
            pass
    return translate_os_error(exc, parts)


class VfolderFiles:
    """Confined file operations under ``root`` (the vfolder's host directory)."""

    def __init__(self, root: Path, owner: Owner) -> None:
        self.root = root
        self.owner = owner

    # -- descriptors -----------------------------------------------------

    def open_root(self) -> int:
        try:
            return os.open(self.root, _DIR_FLAGS)
        except FileNotFoundError:
            raise NotFound("vfolder does not exist on this volume") from None

    @contextlib.contextmanager
    def directory(self, parts: PathParts, *, create: bool = False) -> Iterator[int]:
        """An fd of the directory ``parts`` (created with parents if ``create``)."""
        fd = self.open_root()
        try:
            for index, name in enumerate(parts):
                try:
                    try:
                        child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    except FileNotFoundError:
                        if not create:
                            raise
                        child = self._make_and_open(name, fd)
                except OSError as exc:
                    raise _open_dir_error(exc, name, fd, parts[: index + 1]) from None
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _make_and_open(self, name: str, dir_fd: int) -> int:
        try:
            os.mkdir(name, DIR_MODE, dir_fd=dir_fd)
            self.owner.apply(name, dir_fd)
        except FileExistsError:
            pass  # lost a race with another creator; open what is there
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)

    @contextlib.contextmanager
    def parent(self, parts: PathParts, *, create: bool = False) -> Iterator[tuple[int, str]]:
        """(fd of the parent directory, final name) for a non-root path."""
        if not parts:
            raise InvalidRequest("this operation needs a path inside the vfolder, not its root")
        with self.directory(parts[:-1], create=create) as fd:
            yield fd, parts[-1]

    # -- queries -----------------------------------------------------------

    def lstat(self, parts: PathParts) -> os.stat_result:
        if not parts:
            fd = self.open_root()
            try:
                return os.fstat(fd)
            finally:
                os.close(fd)
        with self.parent(parts) as (dir_fd, name):
            try:
                return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError as exc:
                raise translate_os_error(exc, parts) from None

    def info(self, parts: PathParts) -> EntryInfo:
        st = self.lstat(parts)
        target = None
        if stat_mod.S_ISLNK(st.st_mode):
            with self.parent(parts) as (dir_fd, name):
                target = os.readlink(name, dir_fd=dir_fd)
        return EntryInfo(
            name=parts[-1] if parts else "",
            type=entry_type(st.st_mode),
            size=st.st_size,
            mtime=st.st_mtime,
            mode=st.st_mode,
            target=target,
        )

    def list_dir(self, parts: PathParts, *, limit: int, after: str | None) -> DirPage:
        """One page of a directory, sorted by name, starting after ``after``.

        Only ``limit`` names are kept in memory while scanning, so a directory
        with millions of entries costs one pass per page, not a full sort.
        """
        with self.directory(parts) as fd:
            with os.scandir(fd) as it:
                names = (entry.name for entry in it if after is None or entry.name > after)
                chosen = heapq.nsmallest(limit + 1, names)
            more = len(chosen) > limit
            chosen = chosen[:limit]
            entries: list[EntryInfo] = []
            for name in chosen:
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted while we looked
                target = os.readlink(name, dir_fd=fd) if stat_mod.S_ISLNK(st.st_mode) else None
                entries.append(
                    EntryInfo(name, entry_type(st.st_mode), st.st_size, st.st_mtime, st.st_mode, target)
                )
        return DirPage(entries=entries, next_cursor=chosen[-1] if more and chosen else None)

    def open_for_read(self, parts: PathParts) -> tuple[int, os.stat_result]:
        """An fd of a regular file (never through a symlink) and its stat."""
        with self.parent(parts) as (dir_fd, name):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
            except OSError as exc:
                raise translate_os_error(exc, parts) from None
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            os.close(fd)
            if stat_mod.S_ISDIR(st.st_mode):
                raise Conflict(f"{_describe(parts)}: is a directory (download it as an archive)")
            raise InvalidRequest(f"{_describe(parts)}: not a regular file")
        os.set_blocking(fd, True)
        return fd, st

    # -- changes -------------------------------------------------------------

    def mkdir(self, parts: PathParts, *, parents: bool, exist_ok: bool) -> None:
        with self.parent(parts, create=parents) as (dir_fd, name):
            try:
                os.mkdir(name, DIR_MODE, dir_fd=dir_fd)
            except FileExistsError:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if exist_ok and stat_mod.S_ISDIR(st.st_mode):
                    return
                raise Conflict(f"{_describe(parts)}: already exists") from None
            except OSError as exc:
                raise translate_os_error(exc, parts) from None
            self.owner.apply(name, dir_fd)

    def move(self, src: PathParts, dst: PathParts, *, overwrite: bool) -> None:
        if src == dst[: len(src)]:
            raise InvalidRequest("cannot move a directory into itself")
        with self.parent(src) as (src_dir, src_name), self.parent(dst, create=True) as (dst_dir, dst_name):
            try:
                os.stat(src_name, dir_fd=src_dir, follow_symlinks=False)
            except OSError as exc:
                raise translate_os_error(exc, src) from None
            if not overwrite:
                try:
                    os.stat(dst_name, dir_fd=dst_dir, follow_symlinks=False)
                except FileNotFoundError:
                    pass
                else:
                    raise Conflict(f"{_describe(dst)}: already exists (set overwrite to replace it)")
            try:
                os.rename(src_name, dst_name, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
            except OSError as exc:
                raise translate_os_error(exc, dst) from None

    def delete(self, parts: PathParts, *, recursive: bool) -> None:
        with self.parent(parts) as (dir_fd, name):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if not stat_mod.S_ISDIR(st.st_mode):
                    os.unlink(name, dir_fd=dir_fd)
                elif recursive:
                    # rmtree with dir_fd walks by descriptors and never follows links.
                    shutil.rmtree(name, dir_fd=dir_fd)
                else:
                    os.rmdir(name, dir_fd=dir_fd)
            except OSError as exc:
                raise translate_os_error(exc, parts) from None

    def check_upload_target(self, parts: PathParts) -> None:
        """Fail early if an upload could never be installed at ``parts``."""
        if not parts:
            raise InvalidRequest("upload needs a file path, not the vfolder root")
        fd = self.open_root()
        try:
            for index, name in enumerate(parts[:-1]):
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    return  # will be created at completion
                except OSError as exc:
                    raise _open_dir_error(exc, name, fd, parts[: index + 1]) from None
                os.close(fd)
                fd = child
            try:
                st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat_mod.S_ISDIR(st.st_mode):
                raise Conflict(f"{_describe(parts)}: is a directory")
        finally:
            os.close(fd)

    def install(self, staged: Path, parts: PathParts) -> None:
        """Atomically rename a finished staged upload into place (replacing a file)."""
        with self.parent(parts, create=True) as (dir_fd, name):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                if stat_mod.S_ISDIR(st.st_mode):
                    raise Conflict(f"{_describe(parts)}: is a directory")
            try:
                os.rename(staged, name, dst_dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise translate_os_error(exc, parts) from None
                self._copy_across_devices(staged, name, dir_fd)

    def _copy_across_devices(self, staged: Path, name: str, dir_fd: int) -> None:
        # Staging lives on the volume, so this only happens with odd mount layouts.
        log.warning("staging dir and vfolder on different devices; copying %s", staged)
        tmp = f".{name}.corral-install"
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE, dir_fd=dir_fd)
        try:
            with open(staged, "rb") as src, os.fdopen(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 8 << 20)
            self.owner.apply(tmp, dir_fd)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        os.unlink(staged)
