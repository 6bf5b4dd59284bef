"""OpenSSH into sessions: ``corral ssh-config``, ``corral ssh-proxy``, ``corral ssh``, ``corral vscode``.

The entries ``ssh-config`` writes need no running tunnel: OpenSSH starts ``corral ssh-proxy %n``
itself, which carries the SSH stream over the manager's websocket to the session's sshd. So
``ssh``, ``scp``, ``sftp``, ``rsync`` and VSCode Remote-SSH work from any terminal while the session
runs, with its real host key checked."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time

import click

from corral.common.errors import Conflict, InvalidRequest, ServiceUnavailable

from ..api import AsyncCorralClient
from ..models import Session
from ..ssh_setup import (
    SshFiles, forget_stale_hosts, host_block, host_name, install_include, proxy_command, write_host_file,
)
from .context import cli_state, note, run_async

RECONNECT_ATTEMPTS = 5
SSH_CONNECTION_FAILED = 255  # what ssh exits with when the connection failed or dropped


def _proxy() -> str:
    return proxy_command(cli_state().endpoint)


@click.command("ssh-config")
@click.argument("session_refs", nargs=-1, metavar="[SESSION]...")
@click.option("--all", "all_sessions", is_flag=True, help="Every RUNNING session of yours that has an sshd.")
@click.option("--install", is_flag=True,
              help="Write the entries under ~/.config/corral/ssh/ and add one Include line to ~/.ssh/config.")
def ssh_config_command(session_refs: tuple[str, ...], all_sessions: bool, install: bool) -> None:
    """Print (or --install) `Host corral-NAME` entries for OpenSSH and VSCode Remote-SSH.

    Each entry's ProxyCommand opens the tunnel by itself, so `ssh corral-NAME` works from any terminal
    while the session runs; the session's real host key is pinned (StrictHostKeyChecking stays on).
    A key pair is made under ~/.config/corral/ssh/ and registered on first use."""
    if not session_refs and not all_sessions:
        raise click.UsageError("name the sessions, or give --all")
    if session_refs and all_sessions:
        raise click.UsageError("give sessions or --all, not both")
    files = SshFiles.default()

    async def run() -> list[Session]:
        async with cli_state().client() as client:
            return await client.ssh_sessions(None if all_sessions else list(session_refs), files)

    sessions = run_async(run())
    text = "\n".join(host_block(session, files, _proxy()) for session in sessions)
    if not install:
        if not text:
            note("no RUNNING session of yours has an sshd")
        click.echo(text, nl=False)
        return
    for session in sessions:
        write_host_file(files, session, _proxy())
    if all_sessions:
        for name in forget_stale_hosts(files, {s.name for s in sessions}):
            note(f"removed the entry of {name} (no longer running)")
    changed = install_include(files)
    names = ", ".join(host_name(s) for s in sessions) or "none"
    note(f"installed: {names}" + ("; added an Include line to ~/.ssh/config" if changed else ""))


@click.command("ssh-proxy")
@click.argument("host", metavar="corral-NAME")
def ssh_proxy_command(host: str) -> None:
    """OpenSSH's ProxyCommand: carries stdin/stdout to the session's sshd (what ssh-config writes)."""
    from ..ssh_proxy import run

    click.get_current_context().exit(run(host, cli_state().endpoint))


async def _prepare(client: AsyncCorralClient, ref: str, files: SshFiles, install: bool = False) -> Session:
    (session,) = await client.ssh_sessions([ref], files)
    write_host_file(files, session, _proxy())
    if install:
        install_include(files)
    return session


@click.command("ssh", context_settings={"ignore_unknown_options": True})
@click.argument("session_ref", metavar="SESSION")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- COMMAND...]")
@click.option("--reconnect/--no-reconnect", default=True, show_default=True,
              help="For an interactive login: connect again when the connection drops while the session runs.")
def ssh_command(session_ref: str, command: tuple[str, ...], reconnect: bool) -> None:
    """Log in to SESSION with the real OpenSSH client (or run COMMAND there). Exits with ssh's status."""
    if shutil.which("ssh") is None:
        raise InvalidRequest("the OpenSSH client (ssh) is not installed")
    files = SshFiles.default()
    session = run_async(_with_client(lambda client: _prepare(client, session_ref, files)))
    argv = ["ssh", "-F", str(files.host_file(session.name)), host_name(session), *command]
    interactive = not command and sys.stdin.isatty()
    for attempt in range(RECONNECT_ATTEMPTS + 1):
        code = subprocess.call(argv)
        if code != SSH_CONNECTION_FAILED or not (interactive and reconnect) or attempt == RECONNECT_ATTEMPTS:
            click.get_current_context().exit(code)
        if not run_async(_with_client(lambda client: _still_running(client, session.id))):
            note(f"session {session.name} is no longer running")
            click.get_current_context().exit(code)
        note(f"connection to {session.name} lost; reconnecting ({attempt + 1}/{RECONNECT_ATTEMPTS}, Ctrl-C stops)")
        time.sleep(min(2 ** attempt, 10))


@click.command("vscode")
@click.argument("session_ref", metavar="SESSION")
@click.argument("path", required=False, metavar="[PATH]")
def vscode_command(session_ref: str, path: str | None) -> None:
    """Open SESSION in VSCode (Remote-SSH): installs its ssh entry, then runs `code --remote` when VSCode
    is on PATH, else prints the vscode:// link to open."""
    files = SshFiles.default()
    session = run_async(_with_client(lambda client: _prepare(client, session_ref, files, install=True)))
    user = session.ssh.user if session.ssh else "work"
    folder = path or f"/home/{user}"
    if not folder.startswith("/"):
        raise InvalidRequest("PATH must be absolute inside the session (e.g. /home/work/project)")
    remote = f"ssh-remote+{host_name(session)}"
    code = shutil.which("code")
    if code is None:
        note("VSCode (`code`) is not on PATH: open this link, or pick the host in Remote-SSH")
        click.echo(f"vscode://vscode-remote/{remote}{folder}")
        return
    note(f"opening {host_name(session)}:{folder} in VSCode")
    click.get_current_context().exit(subprocess.call([code, "--remote", remote, folder]))


async def _with_client(operation):  # type: ignore[no-untyped-def]
    async with cli_state().client() as client:
        return await operation(client)


async def _still_running(client: AsyncCorralClient, session_id: str) -> bool:
    try:
        return (await client.get_session(session_id)).status == "RUNNING"
    except (Conflict, ServiceUnavailable):
        return False

