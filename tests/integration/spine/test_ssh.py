"""The real OpenSSH client into a session through `corral ssh-config` (ProxyCommand `corral ssh-proxy %n`):
commands, SFTP, port forwarding, and strict host-key checking against the session's own key."""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from corral.client.config import ClientConfig, write_client_config
from corral.common.ssh_keys import generate_ed25519

from .cluster import LiveCluster

pytestmark = [pytest.mark.docker, pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client")]

CORRAL = [sys.executable, "-c", "from corral.client.cli.entry import main; main()"]


class Workstation:
    """A user's machine: its own HOME and corral configuration, the real ssh/sftp/corral executables."""

    def __init__(self, home: Path, cluster: LiveCluster) -> None:
        self.home = home
        self.config = write_client_config(home / ".config/corral/client.toml", ClientConfig(
            cluster.manager.url, cluster.admin_access_key, cluster.admin_secret_key))
        corral_bin = Path(sys.executable).with_name("corral")
        self.env = {**os.environ, "HOME": str(home), "CORRAL_CONFIG": str(self.config),
                    "PATH": f"{corral_bin.parent}:{os.environ['PATH']}"}
        self.ssh_config = home / ".ssh" / "config"

    async def run(self, *argv: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        def call() -> subprocess.CompletedProcess:
            return subprocess.run(list(argv), env=self.env, input=input, capture_output=True, timeout=timeout,
                                  stdin=None if input is not None else subprocess.DEVNULL)
        return await asyncio.to_thread(call)

    async def corral(self, *args: str) -> subprocess.CompletedProcess:
        return await self.run("corral", *args)

    async def ssh(self, host: str, *args: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        return await self.run("ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", *options, host, *args)


async def running_session(cluster: LiveCluster, name: str):  # type: ignore[no-untyped-def]
    client = cluster.client()
    session = await client.create_session(name=name, resources={"mem": "256m"})
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
    return client, session


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_openssh_through_ssh_config(cluster: LiveCluster, tmp_path: Path) -> None:
    client, session = await running_session(cluster, "nb")
    box = Workstation(tmp_path / "home", cluster)
    installed = await box.corral("ssh-config", "nb", "--install")
    assert installed.returncode == 0, installed.stderr.decode()
    assert "Include" in box.ssh_config.read_text()
    again = await box.corral("ssh-config", "nb", "--install")
    assert again.returncode == 0 and box.ssh_config.read_text().count("Include") == 1  # idempotent

    result = await box.ssh("corral-nb", "echo hello from $(id -un) in $PWD; echo $CORRAL_SESSION_NAME")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split("\n")[:2] == ["hello from work in /home/work", "nb"]

    # SFTP round trip with checksums.
    payload = os.urandom(3 << 20)
    local = tmp_path / "up.bin"
    local.write_bytes(payload)
    batch = tmp_path / "batch"
    batch.write_text(f"put {local} /home/work/up.bin\nget /home/work/up.bin {tmp_path / 'down.bin'}\n")
    sftp = await box.run("sftp", "-F", str(box.ssh_config), "-o", "BatchMode=yes", "-b", str(batch), "corral-nb")
    assert sftp.returncode == 0, sftp.stderr.decode()
    assert hashlib.sha256((tmp_path / "down.bin").read_bytes()).digest() == hashlib.sha256(payload).digest()
    remote_sum = await box.ssh("corral-nb", "sha256sum /home/work/up.bin")
    assert remote_sum.stdout.decode().split()[0] == hashlib.sha256(payload).hexdigest()

    # ssh -L to an HTTP server inside the container (VSCode's port forwarding works the same way).
    await client.execute_collect(session.id, (
        "import subprocess; open('/home/work/index.html', 'w').write('forwarded page');"
        "subprocess.Popen(['python3', '-m', 'http.server', '8000', '--bind', '127.0.0.1'], cwd='/home/work',"
        " start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
    ))
    port = free_port()
    forward = subprocess.Popen(
        ["ssh", "-F", str(box.ssh_config), "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N",
         "-L", f"127.0.0.1:{port}:127.0.0.1:8000", "corral-nb"], env=box.env, stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        page = None
        for _ in range(100):
            try:
                page = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read())
                break
            except OSError:
                await asyncio.sleep(0.2)
        assert page == b"forwarded page"
    finally:
        forward.terminate()
        forward.wait(10)

    # Strict host-key checking: the pinned key passes (above); a wrong line for the alias fails.
    wrong = tmp_path / "wrong_known_hosts"
    alias = f"corral-{session.id}"
    wrong.write_text(f"{alias} {' '.join(generate_ed25519('impostor').public_line.split()[:2])}\n")
    refused = await box.ssh("corral-nb", "true", options=("-o", f"UserKnownHostsFile={wrong}"))
    assert refused.returncode == 255
    assert b"HOST IDENTIFICATION HAS CHANGED" in refused.stderr or b"verification failed" in refused.stderr
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    unknown = await box.ssh("corral-nb", "true", options=("-o", f"UserKnownHostsFile={empty}"))
    assert unknown.returncode == 255 and b"verification failed" in unknown.stderr

    # `corral vscode` without VSCode installed: the link to open (the entry is installed already).
    vscode = await box.corral("vscode", "nb")
    assert vscode.returncode == 0, vscode.stderr.decode()
    assert vscode.stdout.decode().strip() == "vscode://vscode-remote/ssh-remote+corral-nb/home/work"

    # `corral ssh` runs the same client; killing tunnels never touched the session.
    direct = await box.corral("ssh", "nb", "--", "echo", "via corral ssh")
    assert direct.returncode == 0 and direct.stdout.decode().strip() == "via corral ssh", direct.stderr.decode()
    assert (await client.get_session(session.id)).status == "RUNNING"
    await client.destroy_session(session.id)


async def test_keys_follow_the_user_and_refusals_are_one_line(cluster: LiveCluster, tmp_path: Path) -> None:
    client, session = await running_session(cluster, "keys")
    box = Workstation(tmp_path / "home", cluster)
    assert (await box.corral("ssh-config", "keys", "--install")).returncode == 0
    assert (await box.ssh("corral-keys", "true")).returncode == 0
    listed = await box.corral("ssh-key", "ls", "--json")
    (key,) = __import__("json").loads(listed.stdout)
    removed = await box.corral("ssh-key", "rm", key["fingerprint"])
    assert removed.returncode == 0, removed.stderr.decode()
    denied = await box.ssh("corral-keys", "true")
    assert denied.returncode == 255 and b"Permission denied" in denied.stderr  # pushed to the running session
    added = await box.corral("ssh-key", "add", str(box.home / ".config/corral/ssh/id_ed25519.pub"))
    assert added.returncode == 0, added.stderr.decode()
    assert (await box.ssh("corral-keys", "true")).returncode == 0

    missing = await box.run("corral", "ssh-proxy", "corral-nope", input=b"")
    assert missing.returncode != 0 and b"corral ssh-proxy: no session" in missing.stderr.lower().replace(b"no such", b"no")
    bad_key = await box.run("corral", "ssh-key", "add", "-", input=b"ssh-ed25519 not-base64")
    assert bad_key.returncode != 0 and bad_key.stderr.decode().count("\n") == 1
    await client.destroy_session(session.id)
    await client.wait_for_status(session.id, {"TERMINATED"}, timeout=30)
    gone = await box.ssh("corral-keys", "true")
    assert gone.returncode == 255 and b"not RUNNING" in gone.stderr
