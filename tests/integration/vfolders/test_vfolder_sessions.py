"""Vfolders mounted into real containers: upload → mount → change inside → download,
persistence across sessions on another agent, read-only shares and over-quota mounts."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import aiodocker
import pytest

from corral.client.api import AsyncCorralClient
from corral.client.upload_state import UploadStateStore
from corral.common.errors import NotFound

from tests.integration.spine.cluster import LiveCluster

pytestmark = [pytest.mark.docker]

RESOURCES = {"cpu": "1", "mem": "256m"}

# Runs inside the session: checksums of every file below a root, as JSON.
CHECKSUMS = """
import hashlib, json, os
def sums(root):
    out = {}
    for here, _, files in os.walk(root):
        for name in files:
            path = os.path.join(here, name)
            out[os.path.relpath(path, root)] = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    return out
"""


def local_sums(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*") if path.is_file()
    }


async def run_code(client: AsyncCorralClient, session_id: str, code: str) -> str:
    result = await client.execute_collect(session_id, code)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.error)
    return result.stdout


async def start(client: AsyncCorralClient, **kwargs: object) -> str:
    session = await client.create_session(resources=RESOURCES, **kwargs)  # type: ignore[arg-type]
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=90)
    return session.id


async def end(client: AsyncCorralClient, session_id: str) -> None:
    await client.destroy_session(session_id)
    await client.wait_for_status(session_id, {"TERMINATED"}, timeout=60)


async def test_upload_mount_change_download_and_next_session_on_another_agent(
    vf_cluster: LiveCluster, tmp_path: Path
) -> None:
    client = vf_cluster.client()
    await client.create_vfolder("work")
    tree = tmp_path / "tree"
    (tree / "nested" / "deeper").mkdir(parents=True)
    (tree / "empty").mkdir()
    (tree / "readme.txt").write_text("hello vfolder\n")
    (tree / "nested" / "blob.bin").write_bytes(os.urandom(3 << 20))
    (tree / "nested" / "deeper" / "small.bin").write_bytes(os.urandom(1000))
    async with await client.storage("work", state_store=UploadStateStore(tmp_path / "state")) as storage:
        await storage.upload_tree(tree, "in")

    first = await start(client, mounts=["work"])
    info = (await client.get_session(first)).raw
    assert info["agent_id"] == vf_cluster.agents[0].agent_id
    mount = info["mounts"][0]
    assert mount["container_path"] == "/home/work/work" and mount["read_only"] is False
    async with aiodocker.Docker() as docker:
        details = await docker.containers.container(info["kernels"][0]["container_id"]).show()
    assert f"{mount['host_path']}:/home/work/work:rw" in details["HostConfig"]["Binds"]

    inside = json.loads(await run_code(client, first, CHECKSUMS + "print(json.dumps(sums('/home/work/work/in')))"))
    assert inside == local_sums(tree)
    await run_code(client, first, (
        "import os\n"
        "open('/home/work/work/in/readme.txt', 'a').write('changed inside\\n')\n"
        "os.makedirs('/home/work/work/out', exist_ok=True)\n"
        "open('/home/work/work/out/result.txt', 'w').write('written by session one\\n')\n"
        "os.remove('/home/work/work/in/nested/deeper/small.bin')\n"
    ))
    owner = await run_code(client, first, "import os; print(os.stat('/home/work/work/out/result.txt').st_uid)")
    assert owner.strip() == "1000"
    await end(client, first)

    back = tmp_path / "back"
    async with await client.storage("work", "ro") as storage:
        await storage.download_dir("", back)
    expected = local_sums(tree)
    expected["readme.txt"] = hashlib.sha256(b"hello vfolder\nchanged inside\n").hexdigest()
    del expected["nested/deeper/small.bin"]
    assert local_sums(back / "in") == expected
    assert (back / "out" / "result.txt").read_text() == "written by session one\n"
    assert (back / "in" / "empty").is_dir()

    # The next session, on the other agent, mounted elsewhere, sees what the first one wrote.
    second = await start(client, mounts=["work:/data/work"], resource_group="rg2")
    assert (await client.get_session(second)).agent_id == vf_cluster.agents[1].agent_id
    text = await run_code(client, second, "print(open('/data/work/out/result.txt').read(), end='')")
    assert text == "written by session one\n"
    await run_code(client, second, "open('/data/work/out/result.txt', 'a').write('and by session two\\n')")
    await end(client, second)
    async with await client.storage("work", "ro") as storage:
        await storage.download_file("out/result.txt", tmp_path / "result.txt")
    assert (tmp_path / "result.txt").read_text() == "written by session one\nand by session two\n"


WRITE_PROBE = """
import errno
def probe(path):
    try:
        open(path, 'w').write('x')
        return 'written'
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
"""


async def test_read_only_share_and_over_quota_vfolder_mount_read_only(vf_cluster: LiveCluster, tmp_path: Path) -> None:
    owner = vf_cluster.client()
    bob = vf_cluster.client(*(await vf_cluster.add_user("bob")))
    await owner.create_vfolder("lab")
    (tmp_path / "notes.txt").write_text("shared notes\n")
    async with await owner.storage("lab", state_store=UploadStateStore(tmp_path / "s1")) as storage:
        await storage.upload_file(tmp_path / "notes.txt", "notes.txt")
    await owner.share_vfolder("lab", "bob", "ro")

    full = await bob.create_vfolder("full", quota="64k")
    # Sessions can write past a vfs quota (the filesystem does not enforce it); do what they would.
    (vf_cluster.volume_root / full.raw["vfid"] / "big.bin").write_bytes(b"\0" * (100 << 10))
    assert (await bob.get_vfolder("full")).raw["over_quota"] is True

    session = await start(bob, mounts=["lab", "full:/home/work/full"])
    info = (await bob.get_session(session)).raw
    by_name = {m["name"]: m for m in info["mounts"]}
    assert by_name["lab"]["read_only"] and by_name["lab"]["permission"] == "ro"
    assert by_name["full"]["read_only"] and by_name["full"]["permission"] == "rw"
    pending_reason = info["status_history"][0]["reason"]
    assert "vfolder full is over quota (100.0 KiB of 64.0 KiB): mounted read-only" in pending_reason

    assert await run_code(bob, session, "print(open('/home/work/lab/notes.txt').read(), end='')") == "shared notes\n"
    probes = await run_code(bob, session, WRITE_PROBE + (
        "print(probe('/home/work/lab/new.txt'), probe('/home/work/lab/notes.txt'), probe('/home/work/full/more.bin'))"
    ))
    assert probes.split() == ["EROFS", "EROFS", "EROFS"]
    await end(bob, session)

    # A vfolder mounted by an active session cannot go to the trash.
    session = await start(owner, mounts=["lab:ro"])
    assert (await owner.get_session(session)).raw["mounts"][0]["read_only"] is True
    from corral.common.errors import Conflict

    with pytest.raises(Conflict):
        await owner.delete_vfolder("lab")
    await end(owner, session)
    await owner.delete_vfolder("lab")


async def test_project_members_mount_the_project_vfolder_and_lose_it_when_removed(
    vf_cluster: LiveCluster, tmp_path: Path
) -> None:
    admin = vf_cluster.client()
    bob = vf_cluster.client(*(await vf_cluster.add_user("bob")))
    carol = vf_cluster.client(*(await vf_cluster.add_user("carol")))
    await admin.create_project("ml")
    await admin.add_project_member("ml", "bob")
    await admin.add_project_member("ml", "carol", "manager")
    await carol.create_vfolder("shared", project="ml")

    # bob, a plain member, mounts it read-write and writes; carol reads what he wrote.
    session = await start(bob, mounts=["shared"])
    [mount] = (await bob.get_session(session)).raw["mounts"]
    assert (mount["name"], mount["read_only"], mount["permission"]) == ("shared", False, "rw")
    await run_code(bob, session, "open('/home/work/shared/from-bob.txt', 'w').write('bob was here\\n')")
    await end(bob, session)
    async with await carol.storage("shared", "ro") as storage:
        await storage.download_file("from-bob.txt", tmp_path / "from-bob.txt")
    assert (tmp_path / "from-bob.txt").read_text() == "bob was here\n"

    # Removed from the project, bob can no longer mount it.
    await carol.remove_project_member("ml", "bob")
    with pytest.raises(NotFound):
        await bob.create_session(resources=RESOURCES, mounts=["shared"])
