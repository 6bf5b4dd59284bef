"""``corral passwd [USERNAME]``: set a web UI password (yours, or as an admin anyone's)."""
from __future__ import annotations

import sys

import click

from corral.common.errors import InvalidRequest

from .context import cli_state, note, run_async

MIN_LENGTH = 8  # the manager's rules; it says so too, this only spares a round trip
MAX_LENGTH = 1024


def _stdin_lines(count: int) -> list[str]:
    lines = []
    for _ in range(count):
        line = sys.stdin.readline()
        if not line:
            break
        lines.append(line.rstrip("\r\n"))
    if len(lines) < count or not all(lines):
        what = "a password line" if count == 1 else f"{count} non-empty lines (current password, then the new one)"
        raise InvalidRequest(f"--password-stdin: expected {what} on stdin")
    return lines


def check_new_password(password: str, username: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidRequest(f"the password must be {MIN_LENGTH}-{MAX_LENGTH} characters long")
    if password.casefold() == username.casefold():
        raise InvalidRequest("the password must not be the username")


def read_new_password(username: str, from_stdin: bool) -> str:
    """A new password: the first line of stdin, or typed twice (hidden)."""
    if from_stdin:
        password = _stdin_lines(1)[0]
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt="Repeat the new password")
    check_new_password(password, username)
    return password


@click.command("passwd")
@click.argument("username", required=False)
@click.option(
    "--password-stdin", "from_stdin", is_flag=True,
    help="Read the new password from stdin instead of prompting (changing your own password without the "
         "admin role: the current password on the first line, the new one on the second).",
)
def passwd_command(username: str | None, from_stdin: bool) -> None:
    """Set the password for the web UI: your own (default), or USERNAME's as an admin.

    Changing your own asks for your current password first (leave it empty if you have none yet).
    That user's web sessions are signed out.
    """
    client = cli_state().client()

    async def run() -> str:
        async with client:
            me = await client.whoami()
            target = username or me.username
            current: str | None = None
            if target == me.username and me.role != "admin":
                if from_stdin:
                    current, new = _stdin_lines(2)
                    check_new_password(new, target)
                else:
                    current = click.prompt(
                        "Current password (empty if you have none)", hide_input=True, default="", show_default=False
                    ) or None
                    new = read_new_password(target, False)
            else:
                new = read_new_password(target, from_stdin)
            await client.set_password(target, new, current)
            return target

    target = run_async(run())
    note(f"password of {target} set; their web sessions are signed out")
