"""Client paths → components confined to one vfolder.

Two layers keep every byte inside the vfolder:

1. ``parse_vfolder_path`` rejects, before touching the disk, anything that is
   not a plain relative path: NUL bytes, absolute paths, ``..`` components,
   and the same tricks hidden behind one or more levels of percent-encoding.
2. ``VfolderFiles`` (see ``files.py``) never resolves a path string against the
   filesystem. It opens the vfolder root and then each component with
   ``openat(dir_fd, name, O_NOFOLLOW | O_DIRECTORY)``, so a symlink anywhere on
   the way — even one swapped in by a session between our check and our use —
   fails with ELOOP instead of being followed.
"""
from __future__ import annotations

import re
from urllib.parse import unquote

from .errors import PathRejected

MAX_PATH_CHARS = 4096
MAX_NAME_BYTES = 255
# Percent-decoding is repeated this many times to catch double/triple encoding.
_DECODE_ROUNDS = 3
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")

PathParts = tuple[str, ...]


def _dangerous(text: str) -> str | None:
    if "\x00" in text:
        return "NUL byte in path"
    if text.startswith(("/", "\\")):
        return "absolute paths are not allowed"
    if re.match(r"^[A-Za-z]:[\\/]", text):
        return "absolute paths are not allowed"
    for part in re.split(r"[/\\]", text):
        if part == "..":
            return "'..' is not allowed in paths"
    return None


def parse_vfolder_path(raw: object) -> PathParts:
    """Split a client path into safe components; ``()`` is the vfolder root."""
    if not isinstance(raw, str):
        raise PathRejected("path must be a string")
    if len(raw) > MAX_PATH_CHARS:
        raise PathRejected(f"path longer than {MAX_PATH_CHARS} characters")
    reason = _dangerous(raw)
    if reason:
        raise PathRejected(reason, path=raw)
    # Whatever we receive has been decoded once by HTTP already. If decoding it
    # again would produce something dangerous, a layer somewhere (a proxy, a
    # shell script, the client) might do exactly that: refuse it outright.
    decoded = raw
    for _ in range(_DECODE_ROUNDS):
        if not _PERCENT_ESCAPE.search(decoded):
            break
        decoded = unquote(decoded)
        reason = _dangerous(decoded)
        if reason:
            raise PathRejected(f"percent-encoded path: {reason}", path=raw)
    parts: list[str] = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        try:
            encoded = part.encode("utf-8")
        except UnicodeEncodeError:
            raise PathRejected("path is not valid UTF-8", path=raw) from None
        if len(encoded) > MAX_NAME_BYTES:
            raise PathRejected(f"a path component is longer than {MAX_NAME_BYTES} bytes", path=raw)
        parts.append(part)
    return tuple(parts)


def join_parts(parts: PathParts) -> str:
    return "/".join(parts)
