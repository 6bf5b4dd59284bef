"""Storage-proxy specific errors; each renders as problem+json like the shared ones."""
from __future__ import annotations

from corral.common.errors import CorralError, InvalidRequest


class PathRejected(InvalidRequest):
    """A client path tried to leave its vfolder (``..``, absolute, NUL, symlink…)."""

    type_suffix = "path-rejected"
    title = "Path is not allowed"


class ChecksumMismatch(CorralError):
    # tus 1.0.0 checksum extension: 460 Checksum Mismatch.
    type_suffix = "checksum-mismatch"
    status = 460
    title = "Checksum mismatch"


class UploadGone(CorralError):
    type_suffix = "upload-gone"
    status = 410
    title = "Upload expired or terminated"


class UploadBusy(CorralError):
    type_suffix = "upload-busy"
    status = 423
    title = "Upload is being written by another request"


class TusVersionUnsupported(CorralError):
    type_suffix = "tus-version-unsupported"
    status = 412
    title = "Unsupported tus version"


class UnsupportedMediaType(CorralError):
    type_suffix = "unsupported-media-type"
    status = 415
    title = "Unsupported media type"


class RangeNotSatisfiable(CorralError):
    type_suffix = "range-not-satisfiable"
    status = 416
    title = "Range not satisfiable"
