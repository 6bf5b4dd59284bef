"""The storage proxy's periodic quota check, and `OWNER/NAME` vfolder references
(a real manager and a real storage proxy, real files; no containers)."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from corral.common.errors import NotFound, QuotaExceeded
from corral.manager.auth import AuthUser
from corral.manager.db.models import User

from tests.integration.spine.cluster import LiveCluster


async def _auth(cluster: LiveCluster, username: str) -> AuthUser:
    async with cluster.manager.sessionmaker() as db:
        user = await db.scalar(select(User).where(User.username == username))
    assert user is not None
    return AuthUser(user_id=user.id, username=user.username, role=user.role, access_key="")


async def test_periodic_check_makes_an_over_quota_vfolder_read_only(storage_cluster: LiveCluster, tmp_path: Path) -> None:
    client = storage_cluster.client()
    vf = await client.create_vfolder("capped", quota="1m")
    vfid = vf.raw["vfid"]
    quota = storage_cluster.storage.context.quota
    assert await quota.check_all() == {}
    # A session writes straight to the directory, past the quota (the proxy sees no upload).
    (storage_cluster.volume_root / vfid / "big.bin").write_bytes(b"x" * (2 << 20))
    over = await quota.check_all()
    assert list(over) == [("vol1", vfid)] and "over its quota (2.0 MiB of 1.0 MiB)" in over[("vol1", vfid)]

    small = tmp_path / "small.txt"
    small.write_text("hi")
    async with await client.storage("capped") as storage:
        with pytest.raises(QuotaExceeded, match="over its quota.*read-only"):
            await storage.upload_file(small, "small.txt")
        with pytest.raises(QuotaExceeded, match="over its quota"):
            await storage.mkdir("more")
        # The manager's usage call carries the reason; the next mount is read-only with a note.
        proxy = await storage_cluster.manager.vfolders.proxies.get("sp1")
        usage = await storage_cluster.manager.vfolders.client.usage(proxy, "vol1", vfid)
        assert "over its quota" in usage["over_quota_reason"]
        mounts, notes = await storage_cluster.manager.vfolders.resolve_mounts(await _auth(storage_cluster, "admin"), ["capped"])
        assert mounts[0]["read_only"] is True and "over quota" in notes[0]
        # Deleting stays allowed; the next check lifts it.
        await storage.delete("big.bin")
        assert await quota.check_all() == {}
        await storage.upload_file(small, "small.txt")


async def test_owner_slash_name_picks_a_shared_vfolder_over_an_own_one(storage_cluster: LiveCluster) -> None:
    alice_keys = await storage_cluster.add_user("alice")
    bob_keys = await storage_cluster.add_user("bob")
    alice, bob = storage_cluster.client(*alice_keys), storage_cluster.client(*bob_keys)
    theirs = await alice.create_vfolder("data")
    await alice.share_vfolder("data", "bob")
    mine = await bob.create_vfolder("data")

    assert (await bob.get_vfolder("data")).id == mine.id  # own first
    assert (await bob.get_vfolder("alice/data")).id == theirs.id  # through the HTTP API (slash in the ref)
    assert (await bob.get_vfolder("bob/data")).id == mine.id
    with pytest.raises(NotFound, match="no vfolder 'data' of 'carol'"):
        await bob.get_vfolder("carol/data")
    with pytest.raises(NotFound):
        await alice.get_vfolder("bob/data")  # not shared with alice

    service = storage_cluster.manager.vfolders
    mounts, notes = await service.resolve_mounts(await _auth(storage_cluster, "bob"), ["data"])
    assert mounts[0]["owner"] == "bob" and mounts[0]["vfolder_id"] == mine.id
    assert any("alice/data" in note for note in notes)  # says the shared one is shadowed, and how to pick it
    mounts, notes = await service.resolve_mounts(await _auth(storage_cluster, "bob"), ["alice/data:/data"])
    assert mounts[0]["owner"] == "alice" and mounts[0]["vfolder_id"] == theirs.id
    assert mounts[0]["read_only"] is True and mounts[0]["container_path"] == "/data" and notes == []
    mounts, _ = await service.resolve_mounts(await _auth(storage_cluster, "bob"), ["alice/data"])
    assert mounts[0]["container_path"] == "/home/work/data"
