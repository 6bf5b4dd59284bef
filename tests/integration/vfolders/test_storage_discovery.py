"""Clustered: a storage proxy registers itself in etcd and the manager finds it there."""
from __future__ import annotations

import pytest

from corral.common.errors import NotFound
from corral.common.ids import new_secret_key
from corral.storage_proxy.config import load_storage_config
from corral.storage_proxy.server import StorageProxyServer

from tests.integration.spine.cluster import LiveCluster, wait_for

pytestmark = [pytest.mark.etcd]


async def test_manager_discovers_storage_proxies_registered_in_etcd(etcd_endpoint: str, tmp_path) -> None:
    cluster = LiveCluster(db_url=f"sqlite:///{tmp_path / 'corral.db'}", etcd_endpoints=[etcd_endpoint])
    manager_secret, jwt_secret = new_secret_key(), new_secret_key()
    proxy = StorageProxyServer(load_storage_config(None, overrides={
        "proxy_name": "nas-1", "manager_secret": manager_secret, "jwt_secret": jwt_secret,
        "manager_api": {"host": "127.0.0.1", "port": 0}, "client_api": {"host": "127.0.0.1", "port": 0},
        "volumes": [{"name": "fast", "path": str(tmp_path / "fast")}],
        "etcd": {"endpoints": [etcd_endpoint], "namespace": f"/corral-test-{cluster.run_id}", "lease_ttl_s": 5},
    }))
    await cluster.start_manager(storage={"manager_secret": manager_secret, "jwt_secret": jwt_secret,
                                         "discovery_ttl_s": 0.2})
    try:
        client = cluster.client()
        with pytest.raises(NotFound):
            await client.create_vfolder("early", host="nas-1:fast")
        await proxy.start()

        async def registered() -> bool:
            return any(h["host"] == "nas-1:fast" for h in await client.list_storage_hosts())

        await wait_for(registered, timeout=20, interval=0.2)
        vf = await client.create_vfolder("data")  # the only proxy is the default
        assert vf.host == "nas-1:fast" and (tmp_path / "fast" / vf.raw["vfid"]).is_dir()
        grant = await client.vfolder_token("data", "rw")
        assert grant.client_url == proxy.client_url
    finally:
        await proxy.stop()
        await cluster.stop()
