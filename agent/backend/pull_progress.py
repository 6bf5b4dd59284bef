"""Image pull progress from the Docker Engine's pull stream, with no I/O.

``POST /images/create`` streams JSON objects such as::

    {"status": "Pulling from library/python", "id": "3.12"}
    {"status": "Pulling fs layer", "id": "a1b2c3"}
    {"status": "Downloading", "progressDetail": {"current": 123, "total": 456}, "id": "a1b2c3"}
    {"status": "Download complete", "id": "a1b2c3"}
    {"status": "Extracting", "progressDetail": {"current": 99, "total": 456}, "id": "a1b2c3"}
    {"status": "Pull complete", "id": "a1b2c3"}
    {"status": "Digest: sha256:..."}
    {"status": "Status: Downloaded newer image for python:3.12"}
    {"error": "...", "errorDetail": {"message": "..."}}

``PullProgress`` folds them into per-layer byte counts and one summary line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

# Phrases in a pull error that mean "no such image (for you)", not "the pull broke".
_MISSING_MARKERS = (
    "not found", "manifest unknown", "pull access denied", "does not exist", "repository name must",
    "invalid reference format", "name unknown", "unauthorized",
)


class PullFailed(Exception):
    """The stream reported an error; ``missing`` when it means the image is not there."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.missing = is_missing_image_error(message)


def is_missing_image_error(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _MISSING_MARKERS)


@dataclass
class LayerProgress:
    layer_id: str
    status: str = "waiting"
    downloaded: int = 0
    size: int | None = None  # compressed size, once the registry told us
    extracted: int = 0
    cached: bool = False  # "Already exists": nothing to fetch
    done: bool = False


class PullProgress:
    def __init__(self, image: str) -> None:
        self.image = image
        self.layers: dict[str, LayerProgress] = {}
        self.digest: str | None = None
        self.final_status: str | None = None  # "Downloaded newer image for …" / "Image is up to date for …"

    # Feeding ------------------------------------------------------------------------------
    def feed(self, line: Mapping[str, Any]) -> None:
        """Take one stream object; raises ``PullFailed`` for an error object."""
        if line.get("error") or line.get("errorDetail"):
            detail = line.get("errorDetail")
            message = (detail.get("message") if isinstance(detail, Mapping) else None) or line.get("error")
            raise PullFailed(str(message or "unknown error in the pull stream"))
        status = str(line.get("status") or "")
        layer_id = line.get("id")
        if not layer_id or status.startswith("Pulling from") or status.startswith("Pulling repository"):
            self._feed_overall(status)
            return
        self._feed_layer(self.layers.setdefault(str(layer_id), LayerProgress(str(layer_id))), status, line)

    def _feed_overall(self, status: str) -> None:
        if status.startswith("Digest: "):
            self.digest = status.removeprefix("Digest: ").strip()
        elif status.startswith("Status: "):
            self.final_status = status.removeprefix("Status: ").strip()

    @staticmethod
    def _feed_layer(layer: LayerProgress, status: str, line: Mapping[str, Any]) -> None:
        layer.status = status
        detail = line.get("progressDetail") or {}
        current, total = _bytes(detail, "current"), _bytes(detail, "total")
        if status == "Already exists":
            layer.cached = layer.done = True
        elif status == "Downloading":
            if total:
                layer.size = total
            if current is not None:
                layer.downloaded = current
        elif status in ("Verifying Checksum", "Download complete"):
            if layer.size is not None:
                layer.downloaded = layer.size
        elif status == "Extracting":
            if layer.size is not None:
                layer.downloaded = layer.size
            if current is not None:
                layer.extracted = current
        elif status == "Pull complete":
            layer.done = True
            if layer.size is not None:
                layer.downloaded = layer.extracted = layer.size

    # Reading ------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.final_status is not None

    @property
    def layers_done(self) -> int:
        return sum(1 for layer in self.layers.values() if layer.done)

    @property
    def bytes_downloaded(self) -> int:
        return sum(layer.downloaded for layer in self._fetched())

    @property
    def bytes_total(self) -> int:
        """Known compressed size of the layers to fetch (grows as sizes become known)."""
        return sum(layer.size or 0 for layer in self._fetched())

    def _fetched(self) -> list[LayerProgress]:
        return [layer for layer in self.layers.values() if not layer.cached]

    def summary(self) -> str:
        """One line for people, e.g. ``pulling registry.example/x:1 — 3/7 layers, 412/1,830 MB``."""
        count = len(self.layers)
        if self.finished:
            if not count:
                return f"pulled {self.image} ({self.final_status})"
            return f"pulled {self.image} — {count} layers, {_mb(self.bytes_total)} MB"
        if not count:
            return f"pulling {self.image} — resolving"
        line = f"pulling {self.image} — {self.layers_done}/{count} layers"
        if self.bytes_total:
            line += f", {_mb(self.bytes_downloaded, self.bytes_total)}/{_mb(self.bytes_total)} MB"
        fetched = self._fetched()
        if fetched and all(layer.downloaded >= (layer.size or 1) for layer in fetched) and not all(
            layer.done for layer in fetched
        ):
            line += ", extracting"
        return line


def _bytes(detail: Any, key: str) -> int | None:
    if not isinstance(detail, Mapping):
        return None
    if detail.get("units") not in (None, "", "B", "bytes"):  # containerd reports extraction in seconds
        return None
    value = detail.get(key)
    return int(value) if isinstance(value, (int, float)) and value >= 0 else None


def _mb(value: int, scale: int | None = None) -> str:
    """Megabytes with thousands separators; one decimal for small sizes (judged by ``scale``)."""
    megabytes = value / 1_000_000
    if (scale if scale is not None else value) < 10_000_000:
        return f"{megabytes:,.1f}"
    return f"{megabytes:,.0f}"
