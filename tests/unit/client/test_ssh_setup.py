"""corral's OpenSSH files: key pair, pinned host keys, Host blocks, the one Include line."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from corral.client.models import Session
from corral.client.ssh_setup import (
    SshFiles, ensure_key_pair, forget_stale_hosts, host_block, install_include, require_ssh, session_ref_from_host,
    write_host_file, write_known_host,
)
from corral.common.errors import Conflict, InvalidRequest
from corral.common.ssh_keys import generate_ed25519, parse_public_key


def session(name: str = "nb", sid: str = "0f0e-1", key: str | None = None, status: str = "RUNNING") -> Session:
    host_key = key or generate_ed25519(f"corral-{name}").public_line
    return Session.from_json({
        "id": sid, "name": name, "status": status,
        "ssh": {"user": "work", "host_key": host_key, "host_key_alias": f"corral-{sid}"},
    })


def test_the_key_pair_is_made_once_and_kept_private(tmp_path: Path) -> None:
    files = SshFiles(tmp_path / "ssh")
    first = ensure_key_pair(files, "me@box")
    assert ensure_key_pair(files, "me@box") == first
    assert parse_public_key(first).kind == "ssh-ed25519"
    assert stat.S_IMODE(files.private_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.root.stat().st_mode) == 0o700
    assert files.private_key.read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")


def test_known_hosts_pins_by_session_id_and_replaces_only_its_own_line(tmp_path: Path) -> None:
    files = SshFiles(tmp_path / "ssh")
    files.root.mkdir()
    write_known_host(files, session("a", "id-a"))
    write_known_host(files, session("b", "id-b"))
    renewed = session("a", "id-a")
    write_known_host(files, renewed)
    lines = files.known_hosts.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["corral-id-b", "corral-id-a"]
    assert lines[1].split()[2] == renewed.ssh.host_key.split()[1]  # type: ignore[union-attr]


def test_the_host_block_checks_host_keys_strictly(tmp_path: Path) -> None:
    files = SshFiles(tmp_path / "with space" / "ssh")
    block = host_block(session(), files, "/usr/bin/corral ssh-proxy %n")
    assert "Host corral-nb\n" in block
    assert "    ProxyCommand /usr/bin/corral ssh-proxy %n\n" in block
    assert "    HostKeyAlias corral-0f0e-1\n" in block
    assert "    StrictHostKeyChecking yes\n" in block
    assert f'    UserKnownHostsFile "{files.known_hosts}"\n' in block  # quoted: the path has a space
    assert "    User work\n" in block and "IdentitiesOnly yes" in block


def test_install_adds_one_include_above_the_users_own_entries(tmp_path: Path) -> None:
    files = SshFiles(tmp_path / "ssh")
    user_config = tmp_path / "dot-ssh" / "config"
    user_config.parent.mkdir()
    user_config.write_text("Host work-box\n    User me\n")
    user_config.chmod(0o644)
    assert install_include(files, user_config) is True
    assert install_include(files, user_config) is False
    text = user_config.read_text()
    assert text.count("Include") == 1
    assert text.index("Include") < text.index("Host work-box")  # outside any Host block
    assert text.endswith("Host work-box\n    User me\n")  # the user's lines untouched
    assert stat.S_IMODE(user_config.stat().st_mode) == 0o644


def test_host_files_and_stale_entries(tmp_path: Path) -> None:
    files = SshFiles(tmp_path / "ssh")
    write_host_file(files, session("a", "id-a"), "corral ssh-proxy %n")
    write_host_file(files, session("b", "id-b"), "corral ssh-proxy %n")
    assert "Include" in files.config.read_text() and "hosts" in files.config.read_text()
    assert forget_stale_hosts(files, {"a"}) == ["b"]
    assert [p.name for p in files.hosts_dir.iterdir()] == ["a.conf"]


def test_sessions_without_ssh_are_refused_with_a_reason() -> None:
    with pytest.raises(Conflict, match="not RUNNING"):
        require_ssh(session(status="PENDING"))
    with pytest.raises(InvalidRequest, match="no SSH server"):
        require_ssh(Session.from_json({"id": "x", "name": "plain", "status": "RUNNING"}))
    assert session_ref_from_host("corral-nb") == "nb" and session_ref_from_host("nb") == "nb"
