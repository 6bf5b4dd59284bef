"""Fixtures: a storage proxy on an aiohttp test server over a temporary volume."""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from corral.client.storage import StorageClient
from corral.client.upload_state import UploadStateStore
from corral.common.vfolder_token import issue_vfolder_token
from corral.storage_proxy.config import StorageProxyConfig
from corral.storage_proxy.context import CONTEXT_KEY, StorageContext
from corral.storage_proxy.server import create_app

MANAGER_SECRET = "manager-secret-for-tests-0123456789"
JWT_SECRET = "jwt-secret-for-tests-0123456789abcdef"
VOLUME = "local"


def make_config(volume_root: Path, **overrides: Any) -> StorageProxyConfig:
    doc: dict[str, Any] = {
        "manager_secret": MANAGER_SECRET,
        "jwt_secret": JWT_SECRET,
        "proxy_name": "test-proxy",
        "manager_api": {"host": "127.0.0.1", "port": 0},
        "client_api": {"host": "127.0.0.1", "port": 0},
        "volumes": [{"name": VOLUME, "backend": "vfs", "path": str(volume_root)}],
        "owner_uid": os.getuid(),
        "owner_gid": os.getgid(),
        "walk_workers": 4,
    }
    doc.update(overrides)
    return StorageProxyConfig.model_validate(doc)


@dataclass
class Proxy:
    url: str
    context: StorageContext
    session: aiohttp.ClientSession
    volume_root: Path
    state_dir: Path

    @property
    def manager_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {MANAGER_SECRET}"}

    async def create_vfolder(self, vfid: str | None = None, quota_bytes: int | None = None) -> str:
        vfid = vfid or uuid.uuid4().hex
        async with self.session.post(
            f"{self.url}/manager/v1/vfolders",
            json={"volume": VOLUME, "vfid": vfid, "quota_bytes": quota_bytes},
            headers=self.manager_headers,
        ) as resp:
            assert resp.status == 201, await resp.text()
        return vfid

    def token(self, vfid: str, permission: str = "rw", **kwargs: Any) -> str:
        return issue_vfolder_token(JWT_SECRET, vfolder_id=vfid, volume=VOLUME, user="alice", permission=permission, **kwargs)  # type: ignore[arg-type]

    def client(self, vfid: str, permission: str = "rw", **kwargs: Any) -> StorageClient:
        return StorageClient(
            self.url, self.token(vfid, permission), session=self.session,
            state_store=UploadStateStore(self.state_dir), **kwargs,
        )

    def host_path(self, vfid: str) -> Path:
        return self.volume_root / vfid


@pytest.fixture
def volume_root(tmp_path: Path) -> Path:
    return tmp_path / "volume"


@pytest.fixture
async def proxy(aiohttp_server: Callable[..., Awaitable[Any]], volume_root: Path, tmp_path: Path) -> AsyncIterator[Proxy]:
    config = make_config(volume_root)
    app = create_app(config)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        yield Proxy(str(server.make_url("")).rstrip("/"), app[CONTEXT_KEY], session, volume_root, tmp_path / "upload-state")


@pytest.fixture
async def vfid(proxy: Proxy) -> str:
    return await proxy.create_vfolder()
