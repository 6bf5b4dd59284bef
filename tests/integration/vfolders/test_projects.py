"""Projects and project vfolders through the REST API: a real manager (SQLite and
PostgreSQL) and storage proxy, real files; no containers (mounts into real
containers are in test_vfolder_sessions)."""
from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from corral.client.api import AsyncCorralClient
from corral.common.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)

from tests.integration.spine.cluster import LiveCluster


async def _user(cluster: LiveCluster, name: str) -> AsyncCorralClient:
    return cluster.client(*(await cluster.add_user(name)))


async def test_admin_creates_projects_and_managers_manage_members(storage_cluster: LiveCluster) -> None:
    admin = storage_cluster.client()
    bob, carol, dave, eve = [await _user(storage_cluster, n) for n in ("bob", "carol", "dave", "eve")]

    made = await admin.create_project("ml", "the ML team")
    assert (made.name, made.description, made.role, made.members) == ("ml", "the ML team", None, [])
    with pytest.raises(Conflict):
        await admin.create_project("ml")
    with pytest.raises(PermissionDenied):
        await bob.create_project("mine")
    for bad in ("", "../x", "a/b", "-x"):
        with pytest.raises(InvalidRequest):
            await admin.create_project(bad)
    with pytest.raises(InvalidRequest):  # unknown body fields are refused
        await admin._json("POST", "/api/v1/projects", body={"name": "x", "owner": "bob"})

    with pytest.raises(NotFound):
        await admin.add_project_member("nope", "bob")
    with pytest.raises(NotFound):
        await admin.add_project_member("ml", "nobody")
    await admin.add_project_member("ml", "bob")
    project = await admin.add_project_member("ml", "carol", "manager")
    assert [(m.username, m.role) for m in project.members] == [("carol", "manager"), ("bob", "member")]
    with pytest.raises(Conflict):
        await admin.add_project_member("ml", "bob")
    with pytest.raises(Conflict):
        await admin.add_project_member("ml", "bob", "manager")  # a role change is PATCH, not a second add

    # A plain member sees the project but may not change its members; a non-member does not see it at all.
    assert [(p.name, p.role, p.member_count) for p in await bob.list_projects()] == [("ml", "member", 2)]
    assert (await bob.get_project("ml")).role == "member"
    with pytest.raises(PermissionDenied):
        await bob.add_project_member("ml", "eve")
    with pytest.raises(PermissionDenied):
        await bob.remove_project_member("ml", "carol")
    with pytest.raises(PermissionDenied):
        await bob.set_project_member_role("ml", "bob", "manager")
    assert await eve.list_projects() == []
    for attempt in (eve.get_project("ml"), eve.add_project_member("ml", "eve"), eve.remove_project_member("ml", "bob")):
        with pytest.raises(NotFound):
            await attempt

    # A manager manages members.
    await carol.add_project_member("ml", "dave")
    assert (await dave.get_project("ml")).role == "member"
    promoted = await carol.set_project_member_role("ml", "dave", "manager")
    assert {m.username: m.role for m in promoted.members} == {"bob": "member", "carol": "manager", "dave": "manager"}
    await dave.set_project_member_role("ml", "dave", "member")  # there is still carol
    with pytest.raises(Conflict):
        await carol.remove_project_member("ml", "carol")  # the last manager may not leave
    with pytest.raises(Conflict):
        await carol.set_project_member_role("ml", "carol", "member")
    with pytest.raises(NotFound):
        await carol.remove_project_member("ml", "eve")  # not a member

    # A member may leave; then the project is gone for them.
    assert await bob.remove_project_member("ml", "bob") is None
    with pytest.raises(NotFound):
        await bob.get_project("ml")
    left = await carol.remove_project_member("ml", "dave")
    assert left is not None and [m.username for m in left.members] == ["carol"]

    await admin.create_project("other")
    assert [p.name for p in await admin.list_projects()] == ["ml", "other"]  # admins see every project
    assert [p.name for p in await carol.list_projects()] == ["ml"]


async def test_project_vfolders_follow_membership(storage_cluster: LiveCluster, tmp_path: Path) -> None:
    admin = storage_cluster.client()
    bob, carol, eve = [await _user(storage_cluster, n) for n in ("bob", "carol", "eve")]
    await admin.create_project("ml")
    await admin.add_project_member("ml", "bob")
    await admin.add_project_member("ml", "carol", "manager")

    # Any member creates project vfolders; others cannot, and admins must join first.
    created = await bob.create_vfolder("datasets", project="ml")
    assert (created.owner_kind, created.owner, created.project, created.permission, created.is_owner) == \
        ("project", "ml", "ml", "rw", False)
    assert created.raw["creator"] == "bob"
    with pytest.raises(Conflict):
        await carol.create_vfolder("datasets", project="ml")
    with pytest.raises(NotFound):
        await eve.create_vfolder("sneaky", project="ml")
    with pytest.raises(NotFound):
        await bob.create_vfolder("x", project="no-such-project")
    with pytest.raises(PermissionDenied):
        await admin.create_vfolder("x", project="ml")
    bob_own = await bob.create_vfolder("datasets")  # a personal vfolder of the same name is separate

    # Listing: the project's vfolders, with the project's name; bob's own "datasets" first.
    listed = [(v.name, v.owner_kind, v.owner, v.permission, v.is_owner) for v in await carol.list_vfolders()]
    assert listed == [("datasets", "project", "ml", "rw", True)]
    listed = [(v.name, v.owner_kind, v.owner) for v in await bob.list_vfolders()]
    assert listed == [("datasets", "user", "bob"), ("datasets", "project", "ml")]
    assert await eve.list_vfolders() == []
    assert [v["name"] for v in (await carol.get_project("ml")).vfolders] == ["datasets"]

    # Members read and write it: carol writes, bob reads (by id: his own "datasets" wins by name).
    local = tmp_path / "train.csv"
    local.write_text("a,b\n1,2\n")
    async with await carol.storage("datasets", "rw") as storage:
        await storage.upload_file(local, "train.csv")
    async with await bob.storage(created.id, "rw") as storage:
        assert [e["name"] for e in await storage.list()] == ["train.csv"]
        await storage.download_file("train.csv", tmp_path / "copy.csv")
        await storage.mkdir("from-bob")
    assert (tmp_path / "copy.csv").read_text() == "a,b\n1,2\n"

    # Members mount it read-write (no agent here: the session stays pending, its mounts resolved).
    pending = await bob.create_session(mounts=["datasets:/data/ml"], name="uses-ml")
    assert [(m["vfolder_id"], m["container_path"], m["read_only"], m["permission"]) for m in pending.raw["mounts"]] \
        == [(bob_own.id, "/data/ml", False, "rw")]  # by name, bob's own vfolder comes first
    await bob.destroy_session(pending.id)
    pending = await carol.create_session(mounts=["datasets"])
    assert [(m["vfolder_id"], m["read_only"]) for m in pending.raw["mounts"]] == [(created.id, False)]
    await carol.destroy_session(pending.id)
    with pytest.raises(NotFound):
        await eve.create_session(mounts=["datasets"])

    # Non-members: nothing, by name.
    for attempt in (eve.get_vfolder("datasets"), eve.vfolder_token("datasets"), eve.delete_vfolder("datasets")):
        with pytest.raises(NotFound):
            await attempt

    # Members use, managers manage.
    for manage in (bob.rename_vfolder(created.id, "mine"), bob.delete_vfolder(created.id),
                   bob.share_vfolder(created.id, "eve"), bob.update_vfolder(created.id, quota="1g")):
        with pytest.raises(PermissionDenied):
            await manage
    await carol.share_vfolder("datasets", "eve", "ro")  # a manager may share it outside the project
    assert (await eve.get_vfolder("datasets")).permission == "ro"
    await carol.unshare_vfolder("datasets", "eve")
    renamed = await carol.rename_vfolder("datasets", "data")
    assert renamed.name == "data" and renamed.project == "ml"

    # Removing a member takes their access away at once.
    await carol.remove_project_member("ml", "bob")
    for attempt in (bob.get_vfolder(created.id), bob.vfolder_token(created.id, "ro")):
        with pytest.raises(PermissionDenied):  # by exact id: it exists, it is not theirs
            await attempt
    with pytest.raises(NotFound):
        await bob.get_vfolder("data")
    with pytest.raises(NotFound):
        await bob.create_session(mounts=["data"])
    assert [v.owner_kind for v in await bob.list_vfolders()] == ["user"]

    # Managers trash, restore and purge; the trash of a project is visible to its members.
    await admin.add_project_member("ml", "bob")
    with pytest.raises(PermissionDenied):
        await bob.delete_vfolder("data")
    await carol.delete_vfolder("data")
    assert [v.name for v in await bob.list_vfolders(trashed=True)] == ["data"]
    with pytest.raises(PermissionDenied):
        await bob.purge_vfolder("data")
    await carol.restore_vfolder("data")
    await carol.delete_vfolder("data")
    assert (await carol.purge_vfolder("data")).status == "purged"
    assert not (storage_cluster.volume_root / created.raw["vfid"]).exists()


async def test_openapi_lists_the_project_routes(storage_cluster: LiveCluster) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{storage_cluster.manager.url}/api/v1/openapi.json") as response:
            doc = await response.json()
    paths = doc["paths"]
    for path, method in [("/api/v1/projects", "post"), ("/api/v1/projects", "get"),
                         ("/api/v1/projects/{name}", "get"), ("/api/v1/projects/{name}/members", "post"),
                         ("/api/v1/projects/{name}/members/{username}", "patch"),
                         ("/api/v1/projects/{name}/members/{username}", "delete")]:
        assert method in paths[path], (path, method)
    schemas = doc["components"]["schemas"]
    assert schemas["AddMemberRequest"]["additionalProperties"] is False
    assert set(schemas["AddMemberRequest"]["properties"]["role"]["enum"]) == {"member", "manager"}
