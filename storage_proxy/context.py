"""State shared by the manager API and the client API of one proxy process."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiohttp import web

from corral.common.errors import NotFound

from .config import StorageProxyConfig
from .files import Owner
from .quota import QuotaGuard
from .uploads import UploadStore
from .volumes import VolumeBackend, make_volume

log = logging.getLogger(__name__)

CONTEXT_KEY: web.AppKey["StorageContext"] = web.AppKey("corral_storage_context")


@dataclass
class StorageContext:
    config: StorageProxyConfig
    volumes: dict[str, VolumeBackend]
    quota: QuotaGuard
    uploads: UploadStore
    started: bool = field(default=False)

    @classmethod
    def from_config(cls, config: StorageProxyConfig) -> "StorageContext":
        owner = Owner(config.owner_uid, config.owner_gid)
        volumes = {
            v.name: make_volume(v, owner=owner, walk_workers=config.walk_workers) for v in config.volumes
        }
        uploads = UploadStore(volumes, expiry_s=config.upload.expiry_s, max_size=config.upload.max_size)
        return cls(config=config, volumes=volumes, quota=QuotaGuard(volumes, uploads), uploads=uploads)

    async def start(self) -> None:
        if self.started:
            return
        for volume in self.volumes.values():
            await volume.init()
            log.info("volume %s: backend %s at %s", volume.name, volume.backend_name, volume.root)
        await self.uploads.load()
        self.started = True

    def volume(self, name: str) -> VolumeBackend:
        try:
            return self.volumes[name]
        except KeyError:
            raise NotFound(f"no volume named {name!r} on this storage proxy", volume=name) from None


def get_context(request: web.Request) -> StorageContext:
    return request.app[CONTEXT_KEY]
