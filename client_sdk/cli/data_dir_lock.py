"""One `corral up` per data dir: an exclusive ``flock`` held for the process's life.

The lock file inside the data dir records who holds it (pid, start time), so
a second `corral up` can say whom to stop. The kernel drops the lock when its
holder exits, however it exits, so a stale file never blocks anyone.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Iterator

from corral.common.errors import ConfigError

LOCK_FILE = "up.lock"


@contextlib.contextmanager
def hold_data_dir(data_dir: Path, holder: str = "corral up") -> Iterator[Path]:
    """Hold ``data_dir``'s lock for the ``with`` body; a ConfigError when another process holds it."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot use data dir {data_dir}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"data dir {data_dir} is in use by {_holder(fd)}; stop it first") from None
        record = {"pid": os.getpid(), "since": time.time(), "holder": holder}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        yield data_dir
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    """Who holds the lock, as recorded in the file (it may be mid-write: then just "another process")."""
    try:
        record = json.loads(os.pread(fd, 4096, 0))
        since = datetime.fromtimestamp(float(record["since"]))
        shown = since.strftime("%H:%M:%S" if since.date() == datetime.now().date() else "%Y-%m-%d %H:%M:%S")
        return f"{record['holder']} (pid {int(record['pid'])}, since {shown})"
    except (ValueError, KeyError, TypeError, OSError):
        return "another process"
