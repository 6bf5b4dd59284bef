"""``--mount [OWNER/]NAME[:PATH][:ro]``: parsing and the container paths we accept (pure code)."""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from corral.common.errors import InvalidRequest

VFOLDER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")  # a username or project name
_PATH_CHARS_RE = re.compile(r"^[A-Za-z0-9._/@+-]+$")
HOME = "/home/work"
# A vfolder may be mounted below these, or on one of the last four itself.
ALLOWED_ROOTS = (HOME, "/mnt", "/data", "/datasets", "/workspace", "/scratch")
MOUNTABLE_ROOTS = ("/data", "/datasets", "/workspace", "/scratch")
MAX_MOUNTS = 32


@dataclass(frozen=True)
class MountRequest:
    name: str
    container_path: str
    mode: str | None  # "ro", "rw" or None (whatever the caller may)
    spec: str

    @property
    def wants_read_only(self) -> bool:
        return self.mode == "ro"


def default_container_path(name: str) -> str:
    return f"{HOME}/{name}"


def check_container_path(path: str, spec: str) -> str:
    if not path.startswith("/"):
        raise InvalidRequest(f"mount {spec!r}: the path must be absolute, e.g. {HOME}/data")
    if not _PATH_CHARS_RE.match(path) or "//" in path:
        raise InvalidRequest(f"mount {spec!r}: the path may only have letters, digits and . _ - @ + /")
    parts = path.split("/")
    if ".." in parts or "." in parts:
        raise InvalidRequest(f"mount {spec!r}: '.' and '..' are not allowed in the path")
    normal = posixpath.normpath(path)
    below = any(normal.startswith(root + "/") for root in ALLOWED_ROOTS)
    if not (below or normal in MOUNTABLE_ROOTS):
        roots = ", ".join(ALLOWED_ROOTS)
        raise InvalidRequest(f"mount {spec!r}: {normal} is not a place for vfolders; use a path under {roots}")
    return normal


def parse_mount(spec: str) -> MountRequest:
    """``NAME``, ``NAME:ro``, ``NAME:PATH``, ``NAME:PATH:ro`` (``rw`` is accepted too).

    NAME may be ``OWNER/NAME`` (a username or project name): that vfolder,
    not the caller's own one of the same name; it mounts at /home/work/NAME.
    """
    if not isinstance(spec, str) or not spec:
        raise InvalidRequest("a mount must be NAME[:PATH][:ro]")
    fields = spec.split(":")
    name, rest = fields[0], fields[1:]
    owner, _, bare = name.rpartition("/")  # OWNER/NAME picks a vfolder of that user or project
    if not VFOLDER_NAME_RE.match(bare) or (owner and not OWNER_RE.match(owner)):
        raise InvalidRequest(f"mount {spec!r}: {name!r} is not a vfolder name (NAME or OWNER/NAME)")
    mode: str | None = None
    if rest and rest[-1] in ("ro", "rw"):
        mode = rest.pop()
    if len(rest) > 1:
        raise InvalidRequest(f"mount {spec!r}: expected NAME[:PATH][:ro]")
    if rest and not rest[0]:
        raise InvalidRequest(f"mount {spec!r}: empty path")
    path = check_container_path(rest[0], spec) if rest else default_container_path(bare)
    return MountRequest(name=name, container_path=path, mode=mode, spec=spec)


def parse_mounts(specs: list[str]) -> list[MountRequest]:
    if len(specs) > MAX_MOUNTS:
        raise InvalidRequest(f"at most {MAX_MOUNTS} mounts per session")
    mounts = [parse_mount(spec) for spec in specs]
    paths: dict[str, str] = {}
    for mount in mounts:
        for other_path, other_spec in paths.items():
            if mount.container_path == other_path or mount.container_path.startswith(other_path + "/") \
                    or other_path.startswith(mount.container_path + "/"):
                raise InvalidRequest(f"mounts {other_spec!r} and {mount.spec!r} overlap at {mount.container_path}")
        paths[mount.container_path] = mount.spec
    return mounts
