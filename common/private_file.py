"""Writing a file whole or not at all, readable only by its owner unless asked otherwise."""
from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str, mode: int = 0o600) -> None:
    """Writes ``text`` to a temporary file beside ``path`` (created with ``mode``) and renames it into place,
    so a crash never leaves half a file and nobody else can read it meanwhile."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, mode)  # the umask may have taken bits away
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
