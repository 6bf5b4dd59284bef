"""OpenSSH access to sessions: the user's key pair, known_hosts with each session's real host key, and
``Host corral-NAME`` entries whose ProxyCommand (``corral ssh-proxy %n``) opens the tunnel itself.

Everything lives under ``<client config dir>/ssh/`` (``~/.config/corral/ssh/``)::

    id_ed25519, id_ed25519.pub   the key pair ``corral`` made for this user (registered with the manager)
    known_hosts                  one line per session: ``corral-<session id> <its host key>``
    hosts/NAME.conf              one ``Host corral-NAME`` block per session
    config                       ``Include hosts/*.conf``: what ``~/.ssh/config`` includes (``--install``)

Host keys are pinned by session id (``HostKeyAlias``), so a new session under an old name is refused
until ``corral ssh-config`` is run for it again; ``StrictHostKeyChecking`` stays on.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from corral.common.errors import Conflict, InvalidRequest
from corral.common.private_file import write_atomically
from corral.common.ssh_keys import generate_ed25519, parse_public_key

from .config import ENV_CONFIG_PATH, default_config_path
from .models import Session

HOST_PREFIX = "corral-"
KEY_NAME = "id_ed25519"
INCLUDE_COMMENT = "# Corral sessions (corral ssh-config --install); keep this line above any Host block"


@dataclass(frozen=True)
class SshFiles:
    root: Path

    @classmethod
    def default(cls) -> "SshFiles":
        return cls(default_config_path().parent / "ssh")

    @property
    def private_key(self) -> Path:
        return self.root / KEY_NAME

    @property
    def public_key(self) -> Path:
        return self.root / f"{KEY_NAME}.pub"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def hosts_dir(self) -> Path:
        return self.root / "hosts"

    @property
    def config(self) -> Path:
        return self.root / "config"

    def host_file(self, session_name: str) -> Path:
        return self.hosts_dir / f"{session_name}.conf"


def host_name(session: Session) -> str:
    return HOST_PREFIX + session.name


def session_ref_from_host(host: str) -> str:
    """``corral-NAME`` (what OpenSSH's %n gives) → ``NAME``; anything else is taken as the session ref."""
    return host[len(HOST_PREFIX):] if host.startswith(HOST_PREFIX) else host


def ensure_key_pair(files: SshFiles, comment: str) -> str:
    """The user's public key line, making the pair (0600, in a 0700 directory) on first use."""
    files.root.mkdir(parents=True, exist_ok=True)
    os.chmod(files.root, 0o700)
    if files.private_key.exists() and files.public_key.exists():
        return files.public_key.read_text().strip()
    pair = generate_ed25519(comment)
    fd = os.open(files.private_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pair.private_openssh)
    files.public_key.write_text(pair.public_line + "\n")
    return pair.public_line


def corral_command() -> list[str]:
    """How OpenSSH can run this very ``corral`` again (absolute, so VSCode's ssh finds it too)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "corral" and argv0.exists():
        return [str(argv0.resolve())]
    found = shutil.which("corral")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "corral.client.cli.main"]


def proxy_command(endpoint_override: str | None = None) -> str:
    words = corral_command()
    if endpoint_override:
        words += ["--endpoint", endpoint_override]
    words += ["ssh-proxy", "%n"]
    command = " ".join(shlex.quote(word) if word != "%n" else word for word in words)
    config = os.environ.get(ENV_CONFIG_PATH)
    if config:  # the ProxyCommand must find the same client configuration, whoever runs ssh
        command = f"env {ENV_CONFIG_PATH}={shlex.quote(str(Path(config).resolve()))} {command}"
    return command


def require_ssh(session: Session) -> None:
    if session.status != "RUNNING":
        raise Conflict(f"session {session.name} is {session.status}, not RUNNING", session_status=session.status)
    if session.ssh is None or not session.ssh.host_key:
        raise InvalidRequest(
            f"session {session.name} has no SSH server: its image declares no sshd service "
            "(Corral's images do; rebuild yours with `corral image build python`)"
        )


def host_block(session: Session, files: SshFiles, proxy: str) -> str:
    """The ``Host corral-NAME`` entry for the session (``require_ssh`` first)."""
    assert session.ssh is not None
    quote = _config_quote
    return "\n".join([
        f"# Session {session.name} ({session.id}), written by `corral ssh-config`; valid while it runs.",
        f"Host {host_name(session)}",
        f"    User {session.ssh.user or 'work'}",
        f"    ProxyCommand {proxy}",
        f"    HostKeyAlias {session.ssh.host_key_alias}",
        f"    UserKnownHostsFile {quote(files.known_hosts)}",
        "    StrictHostKeyChecking yes",
        "    CheckHostIP no",
        f"    IdentityFile {quote(files.private_key)}",
        "    IdentitiesOnly yes",
        "    PasswordAuthentication no",
        "    ServerAliveInterval 30",
        "",
    ])


def _config_quote(path: Path) -> str:
    text = str(path)
    return f'"{text}"' if re.search(r"\s", text) else text


def write_known_host(files: SshFiles, session: Session) -> None:
    """Pins the session's host key under its alias (replacing an older line for the same alias)."""
    assert session.ssh is not None
    alias = session.ssh.host_key_alias
    key = parse_public_key(session.ssh.host_key)
    lines = files.known_hosts.read_text().splitlines() if files.known_hosts.exists() else []
    kept = [line for line in lines if line.split(" ", 1)[0] != alias]
    kept.append(f"{alias} {key.kind} {key.blob}")
    write_atomically(files.known_hosts, "\n".join(kept) + "\n", 0o600)


def write_host_file(files: SshFiles, session: Session, proxy: str) -> Path:
    files.hosts_dir.mkdir(parents=True, exist_ok=True)
    path = files.host_file(session.name)
    write_atomically(path, host_block(session, files, proxy), 0o600)
    write_atomically(files.config, f"# Written by corral: one file per session.\nInclude {_config_quote(files.hosts_dir)}/*.conf\n", 0o600)
    return path


def install_include(files: SshFiles, user_config: Path | None = None) -> bool:
    """Adds one ``Include`` line for corral's entries at the top of ``~/.ssh/config`` (above every Host
    block, where it applies to all hosts). Idempotent; the user's own lines are left as they are.
    True when the file changed."""
    target = user_config or Path.home() / ".ssh" / "config"
    include = f"Include {_config_quote(files.config)}"
    existing = target.read_text() if target.exists() else ""
    if any(line.strip() == include for line in existing.splitlines()):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(target.parent, 0o700)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o600
    write_atomically(target, f"{INCLUDE_COMMENT}\n{include}\n\n{existing}", mode)
    return True


def forget_stale_hosts(files: SshFiles, live_names: set[str]) -> list[str]:
    """Removes the entries of sessions that are gone; returns their names."""
    removed = []
    if files.hosts_dir.is_dir():
        for path in files.hosts_dir.glob("*.conf"):
            if path.stem not in live_names:
                path.unlink()
                removed.append(path.stem)
    return removed
