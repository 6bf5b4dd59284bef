"""``corral ssh-key add|ls|rm``: the public keys every session of yours accepts for SSH."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from corral.common.errors import InvalidRequest

from ..ssh_setup import SshFiles
from .context import call_api, note
from .options import json_option
from .output import console, print_json
from .render import format_time


@click.group("ssh-key")
def ssh_key_group() -> None:
    """Your SSH public keys: sessions you own accept them (running ones at once). `corral ssh-config`
    makes and registers a key of its own on first use; add yours to use your usual key instead."""


@ssh_key_group.command("add")
@click.argument("public_key_file", required=False, metavar="[FILE]")
@click.option("--name", default="", help="A label (default: the key's comment).")
@json_option
def add_key(public_key_file: str | None, name: str, as_json: bool) -> None:
    """Register a public key: FILE (a .pub file, `-` for stdin), default ~/.ssh/id_ed25519.pub."""
    text = _read_public_key(public_key_file)
    key = call_api(lambda client: client.add_ssh_key(text, name))
    if as_json:
        print_json(key.to_json())
        return
    note(f"added {key.fingerprint} ({key.name}); your running sessions accept it now")


@ssh_key_group.command("ls")
@json_option
def list_keys(as_json: bool) -> None:
    """List your keys."""
    keys = call_api(lambda client: client.ssh_keys())
    if as_json:
        print_json([key.to_json() for key in keys])
        return
    if not keys:
        note("no SSH keys (corral ssh-config makes one; corral ssh-key add FILE registers yours)")
        return
    table = Table(box=None, header_style="bold")
    for column in ("ID", "NAME", "FINGERPRINT", "ADDED"):
        table.add_column(column)
    for key in keys:
        table.add_row(key.id[:8], key.name, key.fingerprint, format_time(key.created_at))
    console().print(table)


@ssh_key_group.command("rm")
@click.argument("ref", metavar="ID|FINGERPRINT")
def remove_key(ref: str) -> None:
    """Remove a key (its id, id prefix from `ls`, or fingerprint)."""

    async def remove(client):  # type: ignore[no-untyped-def]
        if not ref.startswith("SHA256:") and len(ref) < 36:
            matches = [key for key in await client.ssh_keys() if key.id.startswith(ref)]
            if len(matches) > 1:
                raise InvalidRequest(f"{ref!r} matches {len(matches)} keys: give more of the id")
            if matches:
                return await client.remove_ssh_key(matches[0].id)
        return await client.remove_ssh_key(ref)

    key = call_api(remove)
    note(f"removed {key.fingerprint} ({key.name})")


def _read_public_key(path: str | None) -> str:
    if path == "-":
        return sys.stdin.read()
    candidates = [Path(path).expanduser()] if path else [
        Path.home() / ".ssh" / "id_ed25519.pub", Path.home() / ".ssh" / "id_rsa.pub", SshFiles.default().public_key,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.read_text()
    if path:
        raise InvalidRequest(f"no such file: {path}")
    raise InvalidRequest("no public key found in ~/.ssh: give the .pub file to add")
