"""Mount specs (``NAME[:PATH][:ro]``), the agent's binds, the manager's [storage] config."""
from __future__ import annotations

from pathlib import Path

import pytest

from corral.agent.backend.container_config import build_container_config
from corral.agent.config import load_agent_config
from corral.agent.kernel_spec import KernelSpec
from corral.agent.kernels import check_vfolder_mounts
from corral.common.errors import BackendError, InvalidRequest
from corral.manager.config import load_manager_config
from corral.manager.storage.mounts import parse_mount, parse_mounts
from corral.manager.storage.proxies import StorageProxies, split_host


@pytest.mark.parametrize(
    ("spec", "path", "mode"),
    [
        ("data", "/home/work/data", None),
        ("data:ro", "/home/work/data", "ro"),
        ("data:rw", "/home/work/data", "rw"),
        ("data:/mnt/data", "/mnt/data", None),
        ("data:/data", "/data", None),
        ("d.v-1_x:/workspace/in/d:ro", "/workspace/in/d", "ro"),
        ("data:/home/work/x/", "/home/work/x", None),
    ],
)
def test_good_mount_specs(spec: str, path: str, mode: str | None) -> None:
    mount = parse_mount(spec)
    assert (mount.container_path, mount.mode) == (path, mode)


@pytest.mark.parametrize(
    "spec",
    ["", ":ro", "../x", "a/b/c:ro", "data:", "data:rel", "data:/", "data:/etc", "data:/home/work", "data:/mnt",
     "data:/opt/corral/x", "data:/run/corral", "data:/home/work/../etc", "data:/home/work/./x", "data:/home//work/x",
     "data:/home/work/a b", "data:/home/work/x:ro:ro", "data:/home/work/x:/mnt/y", "data:/proc/x", "data:/home/work/a,b"],
)
def test_bad_mount_specs(spec: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_mount(spec)


def test_overlapping_mounts_are_refused() -> None:
    assert len(parse_mounts(["a", "b", "a:/data/a"])) == 3
    for specs in (["a", "b:/home/work/a"], ["a:/data", "b:/data/x"], ["a:/mnt/x/y", "b:/mnt/x"]):
        with pytest.raises(InvalidRequest):
            parse_mounts(specs)
    with pytest.raises(InvalidRequest):
        parse_mounts([f"v{i}" for i in range(33)])


def test_agent_binds_vfolders_read_only_or_read_write(tmp_path: Path) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir(), rw.mkdir()
    spec = KernelSpec(
        kernel_id="k", session_id="s", image="img", allocation={"cpu": "1", "mem": str(1 << 28)},
        mounts=[
            {"name": "a", "host_path": str(ro), "container_path": "/home/work/a", "read_only": True},
            {"name": "b", "host_path": str(rw), "container_path": "/data/b", "read_only": False, "extra": 1},
        ],
    )
    config = load_agent_config(None, data_dir=str(tmp_path / "agent"))
    binds = build_container_config(spec, config, tmp_path / "k", Path("/pkg"), {})["HostConfig"]["Binds"]
    assert f"{ro}:/home/work/a:ro" in binds and f"{rw}:/data/b:rw" in binds
    check_vfolder_mounts(spec)
    rw.rmdir()
    with pytest.raises(BackendError, match="not a directory on this node"):
        check_vfolder_mounts(spec)


async def test_storage_config_and_hosts() -> None:
    config = load_manager_config(None, storage={
        "manager_secret": "m" * 20, "jwt_secret": "j" * 20,
        "proxies": [{"name": "p1", "manager_url": "http://127.0.0.1:1", "client_url": "http://x:2",
                     "jwt_secret": "own-jwt-secret-xxxx"}],
    })
    proxies = StorageProxies(config.storage)
    p1 = await proxies.get("p1")
    assert p1.manager_secret == "m" * 20 and p1.jwt_secret == "own-jwt-secret-xxxx"
    assert await proxies.default_host() == "p1"
    assert split_host("p1:vol") == ("p1", "vol") and split_host("p1") == ("p1", "")
    for bad in (":vol", "p1:", "p1:a:b"):
        with pytest.raises(InvalidRequest):
            split_host(bad)
