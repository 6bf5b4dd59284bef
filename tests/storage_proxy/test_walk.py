"""Unit tests: the parallel walk agrees with du -s and find, and stays inside."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from corral.storage_proxy.walk import ParallelWalker, WalkCancelled


def _tree(root: Path) -> None:
    for d in range(12):
        sub = root / f"d{d}" / "inner"
        sub.mkdir(parents=True)
        for f in range(25):
            (sub / f"f{f}.txt").write_bytes(b"x" * (f * 97))
    (root / "big.bin").write_bytes(os.urandom(300_000))
    os.link(root / "big.bin", root / "d0" / "hardlink.bin")
    os.symlink("/etc", root / "d1" / "escape")
    (root / "empty").mkdir()


def _walk(root: Path, workers: int = 8, sink=None):
    return ParallelWalker(os.open(root, os.O_RDONLY | os.O_DIRECTORY), workers=workers, entry_sink=sink).run()


@pytest.mark.parametrize("workers", [1, 3, 16])
def test_totals_match_du_and_find(tmp_path: Path, workers: int) -> None:
    _tree(tmp_path)
    totals = _walk(tmp_path, workers)
    du = int(subprocess.run(["du", "-s", "-B1", str(tmp_path)], capture_output=True, text=True, check=True).stdout.split()[0])
    found = len(subprocess.run(["find", str(tmp_path)], capture_output=True, text=True, check=True).stdout.splitlines())
    assert totals.disk_bytes == du
    assert totals.entries + 1 == found
    assert totals.files == 12 * 25 + 2
    assert totals.symlinks == 1
    assert totals.dirs == 12 * 2 + 1
    assert totals.bytes == sum(f * 97 for f in range(25)) * 12 + 300_000  # hard link counted once


def test_entries_are_relative_and_do_not_follow_symlinks(tmp_path: Path) -> None:
    _tree(tmp_path)
    seen: list[str] = []
    totals = _walk(tmp_path, sink=lambda batch: seen.extend(e.path for e in batch))
    assert len(seen) == totals.entries
    assert "d1/escape" in seen
    assert not any(p.startswith("d1/escape/") for p in seen)
    assert all(not p.startswith("/") for p in seen)


def test_no_fd_leak_and_cancel(tmp_path: Path) -> None:
    _tree(tmp_path)
    before = len(os.listdir("/proc/self/fd"))
    _walk(tmp_path)
    walker = ParallelWalker(os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY), workers=2)
    walker.cancel()
    with pytest.raises(WalkCancelled):
        walker.run()
    assert len(os.listdir("/proc/self/fd")) == before


def test_listing_without_stat_has_the_same_entries(tmp_path: Path) -> None:
    _tree(tmp_path)
    with_stat: list[tuple[str, str]] = []
    without: list[tuple[str, str]] = []
    _walk(tmp_path, sink=lambda b: with_stat.extend((e.path, e.type) for e in b))
    ParallelWalker(os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY), workers=4,
                   entry_sink=lambda b: without.extend((e.path, e.type) for e in b), stat_entries=False).run()
    assert sorted(with_stat) == sorted(without)


def test_local_volumes_use_few_walk_threads(tmp_path: Path) -> None:
    from corral.storage_proxy.config import VolumeConfig
    from corral.storage_proxy.files import Owner
    from corral.storage_proxy.volumes import make_volume
    from corral.storage_proxy.volumes.base import is_network_filesystem

    volume = make_volume(VolumeConfig(name="v", path=tmp_path), owner=Owner(0, 0), walk_workers=16)
    assert volume.effective_walk_workers <= 16
    forced = make_volume(VolumeConfig(name="v", path=tmp_path, options={"walk_workers": 9}), owner=Owner(0, 0), walk_workers=16)
    assert forced.effective_walk_workers == 9
    assert is_network_filesystem("fuse.sshfs") and is_network_filesystem("nfs4") and not is_network_filesystem("ext4")
