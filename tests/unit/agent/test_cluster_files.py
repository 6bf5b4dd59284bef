"""The files a cluster kernel finds in /run/corral/cluster, and its authorized keys."""
from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

from corral.agent import cluster_files, ssh_material
from corral.agent.kernel_spec import KernelSpec
from corral.agent.kernels import KernelManager
from corral.common import cluster as contract
from corral.common.node_resources import NodeCapacity

from .cluster_specs import PORT_BASE, cluster, kernel_spec

OWNER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwnerOwnerOwnerOwnerOwnerOwnerOwnerOwnerOwn owner@laptop"


def _me() -> tuple[int, int]:
    return os.getuid(), os.getgid()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_hostfile_has_a_line_per_kernel_with_this_kernels_whole_gpus_as_slots() -> None:
    spec = cluster("single-node")
    assert cluster_files.hostfile_text(spec, 4) == "main1 slots=4\nsub1 slots=4\nsub2 slots=4\n"
    assert cluster_files.slots_of(kernel_spec(spec, gpus=2).resources) == 2
    assert cluster_files.slots_of(kernel_spec(spec).resources) == 1  # no GPU (or a fraction): one slot


def test_the_ssh_config_names_each_peer_where_its_sshd_listens() -> None:
    single = cluster_files.ssh_config_text(cluster("single-node"))
    block = single[single.index("Host sub1\n"):].split("\n\n")[0]
    assert block.splitlines() == [
        "Host sub1", "    HostName sub1", f"    Port {contract.CLUSTER_SSH_PORT}", "    HostKeyAlias sub1",
        f"    IdentityFile {contract.CONTAINER_SSH_KEY}", "    IdentitiesOnly yes",
        "    StrictHostKeyChecking accept-new", f"    UserKnownHostsFile {contract.CONTAINER_KNOWN_HOSTS}",
        "    UpdateHostKeys no", "    LogLevel ERROR",
    ]
    assert "User " not in single  # the same user in every kernel
    multi = cluster_files.ssh_config_text(cluster("multi-node"))
    assert [line for line in multi.splitlines() if line.startswith("Host ")] == ["Host main1", "Host sub1", "Host sub2"]
    assert "    HostName 10.0.0.2\n" in multi and f"    Port {PORT_BASE + 1}\n" in multi


def test_the_files_are_written_with_the_permissions_ssh_needs(tmp_path: Path) -> None:
    spec = cluster("multi-node", idx=1)
    cluster_files.write_cluster_files(tmp_path, spec, kernel_spec(spec, gpus=8).resources, *_me())
    directory = tmp_path / "cluster"
    assert ssh_material.cluster_dir(tmp_path) == directory
    assert ssh_material.host_path(tmp_path, contract.CONTAINER_HOSTFILE) == directory / "hostfile"
    assert (directory / "hostfile").read_text().splitlines()[0] == "main1 slots=8"
    assert cluster_files.ssh_config_path(tmp_path).read_text() == cluster_files.ssh_config_text(spec)
    key = directory / "id_ed25519"
    assert key.read_text() == spec.ssh_private_key.strip() + "\n"
    assert (directory / "id_ed25519.pub").read_text() == spec.ssh_public_key + "\n"
    assert _mode(key) == 0o600 and key.stat().st_uid == os.getuid()
    known_hosts = directory / "known_hosts"
    assert known_hosts.read_text() == "" and known_hosts.stat().st_uid == os.getuid()  # the kernel user's
    assert {_mode(directory / name) for name in ("hostfile", "ssh_config", "id_ed25519.pub")} == {0o644}
    assert _mode(directory) == 0o755


def test_the_session_key_stays_authorized_when_the_owners_keys_change(tmp_path: Path) -> None:
    spec = cluster("single-node")
    cluster_files.write_cluster_files(tmp_path, spec, kernel_spec(spec).resources, *_me())
    authorized = tmp_path / "ssh" / "authorized_keys"
    ssh_material.write_authorized_keys(tmp_path, [OWNER_KEY])
    assert authorized.read_text() == f"{OWNER_KEY}\n{spec.ssh_public_key}\n"
    ssh_material.write_authorized_keys(tmp_path, [])  # the owner removed every key
    assert authorized.read_text() == f"{spec.ssh_public_key}\n"


def test_an_ordinary_kernels_authorized_keys_are_the_owners_only(tmp_path: Path) -> None:
    ssh_material.write_authorized_keys(tmp_path, [OWNER_KEY, " "])
    assert (tmp_path / "ssh" / "authorized_keys").read_text() == f"{OWNER_KEY}\n"
    assert not (tmp_path / "cluster").exists()


class CapturingBackend:
    """Notes what the kernel directory holds when its container would be created; the runner never comes up."""

    has_runner = True

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    async def start_kernel(self, spec: KernelSpec, kernel_dir: Path, progress: Any = None) -> str:
        self.seen = {path.name: path.read_text() for path in (kernel_dir / "cluster").iterdir()}
        self.seen["authorized_keys"] = (kernel_dir / "ssh" / "authorized_keys").read_text()
        return "c-1"

    async def is_running(self, container_id: str) -> bool:
        return True

    async def stop_kernel(self, container_id: str, grace_s: int = 3) -> tuple[int | None, str]:
        return 0, ""


class NoLink:
    def send_event(self, kind: str, kernel_id: str, **fields: Any) -> None:
        pass


async def test_the_manager_writes_them_before_the_container_and_keeps_them_through_key_changes(
    tmp_path: Path,
) -> None:
    backend = CapturingBackend()
    manager = KernelManager(tmp_path, backend, NodeCapacity((0,), 1 << 30), NoLink(),  # type: ignore[arg-type]
                            kernel_user=_me())
    spec = kernel_spec(cluster("single-node", idx=2))
    assert spec.cluster is not None
    spec.ssh_authorized_keys = [OWNER_KEY]
    record = await manager.create(spec)
    await asyncio.sleep(0.05)
    assert set(backend.seen) == {"hostfile", "ssh_config", "id_ed25519", "id_ed25519.pub", "known_hosts",
                                 "authorized_keys"}
    assert backend.seen["authorized_keys"] == f"{OWNER_KEY}\n{spec.cluster.ssh_public_key}\n"
    manager.set_authorized_keys(spec.kernel_id, [])
    assert (record.kernel_dir / "ssh" / "authorized_keys").read_text() == f"{spec.cluster.ssh_public_key}\n"
    await manager.destroy(spec.kernel_id, "test over")
    assert not record.kernel_dir.exists()
