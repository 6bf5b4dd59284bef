"""`corral vfolder upload/download` argument forms (rsync trailing slash, scp-like DEST)
through the real CLI against a real manager and storage proxy."""
from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner

from corral.client.cli.main import main as cli

from tests.integration.spine.cluster import LiveCluster


async def _corral(cluster: LiveCluster, *args: str) -> tuple[int, str]:
    env = {
        "CORRAL_ENDPOINT": cluster.manager.url, "CORRAL_ACCESS_KEY": cluster.admin_access_key,
        "CORRAL_SECRET_KEY": cluster.admin_secret_key, "CORRAL_CONFIG": "/nonexistent/client.toml",
    }
    result = await asyncio.to_thread(CliRunner().invoke, cli, [*args], env=env)
    return result.exit_code, result.output


async def test_upload_trailing_slash_and_download_forms(storage_cluster: LiveCluster, tmp_path: Path) -> None:
    await storage_cluster.client().create_vfolder("data")
    src = tmp_path / "newcomer"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("b")
    root = storage_cluster.volume_root / (await storage_cluster.client().get_vfolder("data")).raw["vfid"]

    code, out = await _corral(storage_cluster, "vfolder", "upload", "data", str(src), "--no-progress")
    assert code == 0, out
    assert (root / "newcomer" / "sub" / "b.txt").read_text() == "b"
    code, out = await _corral(storage_cluster, "vfolder", "upload", "data", f"{src}/", "--no-progress")
    assert code == 0, out
    assert (root / "a.txt").read_text() == "a" and (root / "sub" / "b.txt").is_file()
    code, out = await _corral(storage_cluster, "vfolder", "upload", "data", f"{src}/", "--to", "raw", "--no-progress")
    assert code == 0 and (root / "raw" / "a.txt").is_file() and not (root / "raw" / "newcomer").exists()

    # download VFOLDER DEST: the whole vfolder into a new DEST
    dest = tmp_path / "dl"
    code, out = await _corral(storage_cluster, "vfolder", "download", "data", str(dest), "--no-progress")
    assert code == 0, out
    assert (dest / "a.txt").read_text() == "a" and (dest / "newcomer" / "sub" / "b.txt").is_file()
    # an existing directory gets it inside: DEST/NAME
    code, out = await _corral(storage_cluster, "vfolder", "download", "data", "sub", str(dest), "--no-progress")
    assert code == 0 and (dest / "sub" / "b.txt").is_file()
    # VFOLDER PATH DEST for a file, and the VFOLDER:PATH form
    code, out = await _corral(storage_cluster, "vfolder", "download", "data", "a.txt", str(tmp_path / "copy.txt"), "--no-progress")
    assert code == 0 and (tmp_path / "copy.txt").read_text() == "a"
    code, out = await _corral(storage_cluster, "vfolder", "download", "data:sub/b.txt", str(tmp_path / "b2.txt"), "--no-progress")
    assert code == 0 and (tmp_path / "b2.txt").read_text() == "b"
    # a missing parent: one readable line, "not found" status
    code, out = await _corral(storage_cluster, "vfolder", "download", "data", str(tmp_path / "nope" / "x"))
    assert code == 4 and out.strip().splitlines() == [f"error: {tmp_path / 'nope'}: no such directory (the destination's parent must exist; DEST itself is created)"]
