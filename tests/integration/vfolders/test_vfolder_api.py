"""Vfolders through the manager's REST API and the storage proxy's file API: a real
manager (SQLite and PostgreSQL), a real storage proxy, real files; no containers."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import aiohttp
import pytest

from corral.client.storage import StorageClient
from corral.client.upload_state import UploadStateStore
from corral.common.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
)
from corral.common.vfolder_token import issue_vfolder_token

from tests.integration.spine.cluster import LiveCluster


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_create_list_info_rename_and_name_rules(storage_cluster: LiveCluster, tmp_path: Path) -> None:
    client = storage_cluster.client()
    created = await client.create_vfolder("data", quota="1m")
    assert created.quota_bytes == 1 << 20 and created.host == "sp1:vol1" and created.permission == "rw"
    assert (storage_cluster.volume_root / created.raw["vfid"]).is_dir()
    with pytest.raises(Conflict):
        await client.create_vfolder("data")
    for bad in ("../x", "a/b", "", "-x"):
        with pytest.raises(InvalidRequest):
            await client.create_vfolder(bad)
    with pytest.raises(NotFound):
        await client.create_vfolder("elsewhere", host="nope:vol1")
    with pytest.raises(NotFound):
        await client.create_vfolder("elsewhere", host="sp1:nope")

    listing = await client.list_vfolders()
    assert [v.name for v in listing] == ["data"]
    info = await client.get_vfolder("data")
    assert info.usage_bytes == 0 and info.raw["over_quota"] is False and info.raw["usage"]["files"] == 0
    assert (await client.get_vfolder(created.id[:8])).id == created.id  # id prefix works too

    renamed = await client.rename_vfolder("data", "datasets")
    assert renamed.name == "datasets" and renamed.id == created.id
    with pytest.raises(NotFound):
        await client.get_vfolder("data")
    await client.create_vfolder("data")  # the old name is free again
    with pytest.raises(Conflict):
        await client.rename_vfolder("data", "datasets")
    unlimited = await client.update_vfolder("datasets", unlimited=True)
    assert unlimited.quota_bytes is None
    hosts = await client.list_storage_hosts()
    assert hosts[0]["host"] == "sp1:vol1" and hosts[0]["backend"] == "vfs" and hosts[0]["default"]


async def test_upload_download_and_quota_refusal(storage_cluster: LiveCluster, tmp_path: Path) -> None:
    client = storage_cluster.client()
    await client.create_vfolder("q", quota="1m")
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(600 * 1024))
    async with await client.storage("q", "rw", state_store=UploadStateStore(tmp_path / "state")) as storage:
        await storage.mkdir("a")
        result = await storage.upload_file(small, "a/small.bin")
        assert result.size == small.stat().st_size
        with pytest.raises(QuotaExceeded) as refused:
            await storage.upload_file(small, "a/again.bin")
        assert "1.0 MiB" in str(refused.value) and "quota" in str(refused.value)
        assert refused.value.extra["quota_bytes"] == 1 << 20
        assert getattr(refused.value, "http_status", None) == 413
        copy = tmp_path / "copy.bin"
        await storage.download_file("a/small.bin", copy)
        assert _sha(copy) == _sha(small)
    info = await client.get_vfolder("q")
    assert info.usage_bytes == small.stat().st_size and info.raw["usage"]["files"] == 1


async def test_read_only_share_cannot_write_and_permissions_hold(storage_cluster: LiveCluster, tmp_path: Path) -> None:
    owner = storage_cluster.client()
    bob = storage_cluster.client(*(await storage_cluster.add_user("bob")))
    carol = storage_cluster.client(*(await storage_cluster.add_user("carol")))
    vf = await owner.create_vfolder("shared")
    local = tmp_path / "f.txt"
    local.write_text("from the owner\n")
    async with await owner.storage("shared", "rw") as storage:
        await storage.upload_file(local, "f.txt")
    with pytest.raises(NotFound):
        await bob.get_vfolder("shared")
    await owner.share_vfolder("shared", "bob", "ro")
    with pytest.raises(NotFound):
        await owner.share_vfolder("shared", "nobody")

    seen = await bob.list_vfolders()
    assert [(v.name, v.permission, v.is_owner, v.owner) for v in seen] == [("shared", "ro", False, "admin")]
    assert "shared_with" not in seen[0].raw  # only the owner sees who else has it
    assert (await owner.get_vfolder("shared")).shared_with == [{"username": "bob", "permission": "ro"}]
    with pytest.raises(PermissionDenied):
        await bob.vfolder_token("shared", "rw")
    async with await bob.storage("shared", "ro") as storage:
        assert [e["name"] for e in await storage.list()] == ["f.txt"]
        await storage.download_file("f.txt", tmp_path / "bob.txt")
        assert (tmp_path / "bob.txt").read_text() == "from the owner\n"
        for attempt in (
            storage.upload_file(local, "bob.txt"),
            storage.mkdir("x"),
            storage.delete("f.txt"),
            storage.move("f.txt", "g.txt"),
        ):
            with pytest.raises(PermissionDenied):
                await attempt
    for manage in (bob.rename_vfolder("shared", "mine"), bob.delete_vfolder("shared"),
                   bob.share_vfolder("shared", "carol", "rw")):
        with pytest.raises(PermissionDenied):
            await manage
    with pytest.raises(PermissionDenied):  # asking for rw in a mount is refused too
        await bob.create_session(mounts=["shared:rw"])
    with pytest.raises(PermissionDenied):
        await carol.get_vfolder(vf.id)  # by id: exists, not hers
    with pytest.raises(NotFound):
        await carol.vfolder_token("shared")

    await owner.share_vfolder("shared", "bob", "rw")
    async with await bob.storage("shared", "rw") as storage:
        await storage.upload_file(local, "from-bob.txt")
    await bob.unshare_vfolder("shared", "bob")  # a user may leave a share
    with pytest.raises(NotFound):
        await bob.get_vfolder("shared")


async def test_expired_forged_and_foreign_tokens_are_refused(storage_cluster: LiveCluster, tmp_path: Path) -> None:
    client = storage_cluster.client()
    one = await client.create_vfolder("one")
    two = await client.create_vfolder("two")
    grant = await client.vfolder_token("one", "rw")
    assert grant.client_url == storage_cluster.storage.client_url and grant.vfid == one.raw["vfid"]
    assert grant.expires_at is not None and grant.expires_at.timestamp() > time.time() + 60

    def token(**overrides: object) -> str:
        claims: dict = {"vfolder_id": one.raw["vfid"], "volume": "vol1", "user": "admin", "permission": "rw"}
        claims.update(overrides)
        secret = str(claims.pop("secret", storage_cluster.storage_jwt_secret))
        return issue_vfolder_token(secret, **claims)  # type: ignore[arg-type]

    expired = token(ttl_s=60, now=time.time() - 3600)
    forged = token(secret="not-the-secret-at-all-but-long-enough-for-hs256")
    cases = [
        (StorageClient(grant.client_url, expired), AuthenticationFailed, 401),
        (StorageClient(grant.client_url, forged), AuthenticationFailed, 401),
        (StorageClient(grant.client_url, "garbage", vfid=one.raw["vfid"]), AuthenticationFailed, 401),
        # A valid token for `one` used on `two`:
        (StorageClient(grant.client_url, grant.token, vfid=two.raw["vfid"]), PermissionDenied, 403),
    ]
    for storage, error, status in cases:
        async with storage:
            with pytest.raises(error) as caught:
                await storage.list()
            assert getattr(caught.value, "http_status", None) == status
    async with aiohttp.ClientSession() as http:  # no token at all
        async with http.get(f"{grant.client_url}/client/v1/vfolders/{one.raw['vfid']}/files") as response:
            assert response.status == 401
            assert response.headers["Content-Type"].startswith("application/problem+json")


async def test_trash_restore_and_purge(storage_cluster: LiveCluster, tmp_path: Path) -> None:
    client = storage_cluster.client()
    vf = await client.create_vfolder("old")
    host_dir = storage_cluster.volume_root / vf.raw["vfid"]
    (tmp_path / "x").write_text("x")
    async with await client.storage("old") as storage:
        await storage.upload_file(tmp_path / "x", "x")
    with pytest.raises(Conflict):
        await client.purge_vfolder("old")  # only what is in the trash

    trashed = await client.delete_vfolder("old")
    assert trashed.status == "trashed"
    assert await client.list_vfolders() == []
    assert [v.id for v in await client.list_vfolders(trashed=True)] == [vf.id]
    with pytest.raises(NotFound) as hidden:
        await client.get_vfolder("old")
    assert "trash" in str(hidden.value)
    with pytest.raises(NotFound):
        await client.create_session(mounts=["old"])
    with pytest.raises(NotFound):
        await client.vfolder_token("old")
    assert (host_dir / "x").read_text() == "x"  # moved aside, not deleted

    newer = await client.create_vfolder("old")  # the name is free while the first is in the trash
    with pytest.raises(Conflict):
        await client.restore_vfolder(vf.id)
    await client.rename_vfolder(newer.id, "newer")
    restored = await client.restore_vfolder("old")
    assert restored.status == "ready" and (await client.get_vfolder("old")).usage_bytes == 1

    await client.delete_vfolder("old")
    purged = await client.purge_vfolder("old")
    assert purged.status == "purged"
    assert not host_dir.exists()
    assert await client.list_vfolders(trashed=True) == []
    with pytest.raises(NotFound):
        await client.purge_vfolder("old")


async def test_bad_mounts_are_refused_before_anything_runs(storage_cluster: LiveCluster) -> None:
    client = storage_cluster.client()
    await client.create_vfolder("data")
    for bad in ("../x", "data:relative/path", "data:/etc/passwd", "data:/home/work/../../etc", "data:/",
                "data:/opt/corral/x", "data:/home/work/a:ro:extra", "data:", "data:/home/work/a b"):
        with pytest.raises(InvalidRequest):
            await client.create_session(mounts=[bad])
    with pytest.raises(InvalidRequest):
        await client.create_session(mounts=["data:/data", "data:/data/inner"])
    with pytest.raises(NotFound):
        await client.create_session(mounts=["nope"])
    assert (await client.list_sessions(all=True)).items == []


async def test_admin_creates_users_and_openapi_lists_the_routes(storage_cluster: LiveCluster) -> None:
    admin = storage_cluster.client()
    made = await admin.create_user("dora")
    dora = storage_cluster.client(made["access_key"], made["secret_key"])
    assert (await dora.whoami()).username == "dora"
    with pytest.raises(PermissionDenied):
        await dora.create_user("eve")
    with pytest.raises(Conflict):
        await admin.create_user("dora")
    assert {u["username"] for u in await admin.list_users()} >= {"admin", "dora"}

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{storage_cluster.manager.url}/api/v1/openapi.json") as response:
            paths = (await response.json())["paths"]
    for path, method in [("/api/v1/vfolders", "post"), ("/api/v1/vfolders/{ref}", "patch"),
                         ("/api/v1/vfolders/{ref}/token", "post"), ("/api/v1/vfolders/{ref}/purge", "post"),
                         ("/api/v1/vfolders/{ref}/shares/{username}", "delete"), ("/api/v1/users", "post")]:
        assert method in paths[path], path
