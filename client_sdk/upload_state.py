"""Where an interrupted upload can be resumed from: one small JSON file per upload.

Keyed by the local file (absolute path, size, mtime) and the destination (proxy,
vfolder, remote path), so running the same upload again finds its tus URL, and
a file changed in between starts afresh.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path


def default_state_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "corral" / "uploads"


@dataclass(frozen=True)
class UploadKey:
    local_path: str
    size: int
    mtime_ns: int
    proxy_url: str
    vfid: str
    remote_path: str

    @classmethod
    def for_file(cls, local_path: Path, *, proxy_url: str, vfid: str, remote_path: str) -> "UploadKey":
        st = local_path.stat()
        return cls(str(local_path.resolve()), st.st_size, st.st_mtime_ns, proxy_url, vfid, remote_path)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:40]


@dataclass
class UploadRecord:
    upload_url: str
    created_at: float


class UploadStateStore:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_state_dir()

    def _file(self, key: UploadKey) -> Path:
        return self.directory / f"{key.digest()}.json"

    def get(self, key: UploadKey) -> UploadRecord | None:
        try:
            doc = json.loads(self._file(key).read_text())
            return UploadRecord(upload_url=str(doc["upload_url"]), created_at=float(doc["created_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: UploadKey, upload_url: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._file(key)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"upload_url": upload_url, "created_at": time.time(), "key": asdict(key)}))
        os.replace(tmp, path)

    def forget(self, key: UploadKey) -> None:
        try:
            self._file(key).unlink()
        except FileNotFoundError:
            pass
