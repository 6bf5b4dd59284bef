"""Volume backends, looked up by the ``backend`` name in a volume's config."""
from __future__ import annotations

from corral.common.errors import ConfigError

from ..config import VolumeConfig
from ..files import Owner
from .base import UsageReport, VolumeBackend
from .vfs import VfsVolume

BACKENDS: dict[str, type[VolumeBackend]] = {
    "vfs": VfsVolume,
}


def make_volume(config: VolumeConfig, *, owner: Owner, walk_workers: int) -> VolumeBackend:
    try:
        backend_cls = BACKENDS[config.backend]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"volume {config.name!r}: unknown backend {config.backend!r} (known: {known})") from None
    return backend_cls(config, owner=owner, walk_workers=walk_workers)


__all__ = ["BACKENDS", "UsageReport", "VolumeBackend", "make_volume"]
