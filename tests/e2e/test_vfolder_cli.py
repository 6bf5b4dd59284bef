"""`corral vfolder …` as a user runs it against a real `corral up` (which starts its
own storage proxy): an upload killed midway and resumed, transfers, sharing, quotas,
a mount in a session; and `corral storage start` on its own."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_cli_end_to_end import CORRAL, CorralUp, base_image, up  # noqa: F401 - fixtures
from tests.fixtures import free_port

BIG = 256 << 20
CHUNK = "4m"


def sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def staged_bytes(volume_root: Path) -> int:
    staging = volume_root / ".corral" / "uploads"
    if not staging.is_dir():
        return 0
    return sum(p.stat().st_size for p in staging.iterdir() if p.is_file() and not p.name.endswith(".json"))


@pytest.mark.docker
@pytest.mark.slow
def test_upload_killed_midway_resumes_then_mounts_and_downloads(up: CorralUp) -> None:  # noqa: F811
    created = up.corral("vfolder", "create", "big", "--json")
    assert created.returncode == 0, created.stderr
    vfolder = json.loads(created.stdout)
    assert vfolder["host"] == "local:default"
    big = up.root / "big.bin"
    with open(big, "wb") as fh:
        block = os.urandom(1 << 20)
        for i in range(BIG >> 20):
            fh.write(block[:-8] + i.to_bytes(8, "big"))

    volume_root = up.root / "data" / "volumes" / "default"
    upload = subprocess.Popen(
        [CORRAL, "vfolder", "upload", "big", str(big), "--to", "in", "--chunk-size", CHUNK, "--no-progress"],
        env=up.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while staged_bytes(volume_root) < (16 << 20):
        assert upload.poll() is None, f"the upload ended before it could be interrupted: {upload.communicate()}"
        assert time.monotonic() < deadline, "the upload did not start"
        time.sleep(0.005)
    upload.send_signal(signal.SIGKILL)
    upload.wait(timeout=10)
    had = staged_bytes(volume_root)
    assert 0 < had < BIG

    resumed = up.corral("vfolder", "upload", "big", str(big), "--to", "in", "--chunk-size", CHUNK, "--json")
    assert resumed.returncode == 0, resumed.stderr
    [result] = json.loads(resumed.stdout)
    assert result["remote_path"] == "in/big.bin" and result["size"] == BIG
    assert result["resumed_from"] >= had - (4 << 20) and result["resumed_from"] > 0
    assert result["bytes_sent"] <= BIG - result["resumed_from"]  # nothing sent twice in this run

    files = json.loads(up.corral("vfolder", "files", "big", "in", "--json").stdout)
    assert [(f["name"], f["size"]) for f in files] == [("big.bin", BIG)]
    # A session sees it at /home/work/big and writes next to it.
    ran = up.corral("run", "--mount", "big", "--cpu", "1", "--mem", "256m",
                    "import os; print(os.path.getsize('/home/work/big/in/big.bin'));"
                    "_ = open('/home/work/big/from-session.txt', 'w').write('hi\\n')")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == str(BIG)

    out = up.root / "out"
    out.mkdir()
    down = up.corral("vfolder", "download", "big", "in/big.bin", str(out), "--no-progress")
    assert down.returncode == 0, down.stderr
    assert sha(out / "big.bin") == sha(big)
    whole = up.corral("vfolder", "download", "big", "", str(out / "all"), "--no-progress")
    assert whole.returncode == 0, whole.stderr
    assert (out / "all" / "from-session.txt").read_text() == "hi\n"


@pytest.mark.docker
@pytest.mark.slow
def test_vfolder_commands_sharing_quota_and_errors(up: CorralUp) -> None:  # noqa: F811
    assert up.corral("vfolder", "create", "docs", "--quota", "64k").returncode == 0
    assert up.corral("vfolder", "mkdir", "docs", "a/b", "-p").returncode == 0
    small = up.root / "small.txt"
    small.write_text("small\n")
    assert up.corral("vfolder", "upload", "docs", str(small), "--to", "a/b").returncode == 0
    assert up.corral("vfolder", "mv", "docs", "a/b/small.txt", "a/small.txt").returncode == 0
    listed = json.loads(up.corral("vfolder", "files", "docs", "-r", "--json").stdout)
    assert {e["path"] for e in listed} == {"a", "a/b", "a/small.txt"}

    too_big = up.root / "big.bin"
    too_big.write_bytes(b"\0" * (100 << 10))
    refused = up.corral("vfolder", "upload", "docs", str(too_big), "--no-progress")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "quota of 64.0 KiB" in refused.stderr

    made = up.corral("admin", "user", "create", "bob", "--json")
    assert made.returncode == 0, made.stderr
    bob = json.loads(made.stdout)
    assert up.corral("vfolder", "share", "docs", "bob").returncode == 0
    info = json.loads(up.corral("vfolder", "info", "docs", "--json").stdout)
    assert info["shared_with"] == [{"username": "bob", "permission": "ro"}] and info["usage"]["files"] == 1
    as_bob = {**up.env, "CORRAL_ACCESS_KEY": bob["access_key"], "CORRAL_SECRET_KEY": bob["secret_key"]}

    def bob_corral(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CORRAL, *args], env=as_bob, capture_output=True, text=True, timeout=120)

    assert [v["permission"] for v in json.loads(bob_corral("vfolder", "ls", "--json").stdout)] == ["ro"]
    denied = bob_corral("vfolder", "upload", "docs", str(small), "--no-progress")
    assert denied.returncode == 3 and "read-only" in denied.stderr
    assert bob_corral("vfolder", "rm", "docs").returncode == 3

    missing = up.corral("vfolder", "info", "nope")
    assert missing.returncode == 4 and missing.stderr.startswith("error:")
    bad_mount = up.corral("run", "--mount", "docs:/etc", "print(1)")
    assert bad_mount.returncode == 1 and "not a place for vfolders" in bad_mount.stderr

    assert up.corral("vfolder", "rm", "docs").returncode == 0
    assert json.loads(up.corral("vfolder", "ls", "--json").stdout) == []
    assert [v["name"] for v in json.loads(up.corral("vfolder", "ls", "--trash", "--json").stdout)] == ["docs"]
    assert up.corral("vfolder", "purge", "docs", "--yes").returncode == 0
    assert json.loads(up.corral("vfolder", "ls", "--trash", "--json").stdout) == []


def test_storage_start_serves_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "storage.toml"
    config.write_text(
        'proxy_name = "s1"\nmanager_secret = "manager-secret-0123456789"\njwt_secret = "jwt-secret-0123456789"\n'
        f'[manager_api]\nhost = "127.0.0.1"\nport = {port}\n[client_api]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[[volumes]]\nname = "v"\npath = "{tmp_path / "v"}"\n'
    )
    proc = subprocess.Popen([CORRAL, "storage", "start", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                    assert json.load(response)["proxy_name"] == "s1"
                    break
            except OSError:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, output
        assert "Traceback" not in output and "storage proxy stopped" in output
    finally:
        if proc.poll() is None:
            proc.kill()
    bad = subprocess.run([CORRAL, "storage", "start", "--config", str(config.with_name("nope.toml"))],
                         capture_output=True, text=True)
    assert bad.returncode == 2
