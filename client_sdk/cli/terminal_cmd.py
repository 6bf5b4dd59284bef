"""``corral terminal``: an interactive shell in a session, in this terminal."""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import termios
import tty
from typing import Iterator

import click

from ..api import AsyncCorralClient
from ..terminal import TerminalConnection
from .context import cli_state, note, run_async

READ_CHUNK = 1 << 16


@click.command("terminal")
@click.argument("session_ref", metavar="SESSION")
@click.option("--attach", "attach", default=None, metavar="PTY",
              help="Re-attach to the shell a dropped `corral terminal` left running (it prints the id).")
def terminal_command(session_ref: str, attach: str | None) -> None:
    """Open a shell in SESSION. Keys (Ctrl-C included) go to the remote shell; exits with the shell's
    status. A dropped connection leaves the shell running for a while: `--attach PTY` finds it again."""
    client = cli_state().client()
    click.get_current_context().exit(run_async(_terminal(client, session_ref, attach)))


async def _terminal(client: AsyncCorralClient, ref: str, attach: str | None) -> int:
    size = shutil.get_terminal_size()
    async with client:
        async with client.terminal(ref, rows=size.lines, cols=size.columns, attach=attach) as term:
            if attach is None:
                note(f"shell {term.pty_id} in {ref}; if the connection drops, `--attach {term.pty_id}` finds it again")
            try:
                with _raw_input(sys.stdin) as interactive:
                    await _pump(term, interactive)
            except BaseException:
                note(f"\r\nshell left running; `corral terminal {ref} --attach {term.pty_id}` goes back to it")
                raise
    return term.exit_code if term.exit_code is not None else 0


async def _pump(term: TerminalConnection, interactive: bool) -> None:
    loop = asyncio.get_running_loop()
    stdin_fd, stdout = sys.stdin.fileno(), sys.stdout.buffer
    keys: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)
    reading = True
    ended = False

    def on_keys() -> None:
        nonlocal reading, ended
        data = os.read(stdin_fd, READ_CHUNK)
        if not data:
            ended = True  # end of piped input: the shell decides when to end
        else:
            keys.put_nowait(data)
        if ended or keys.full():
            # Nothing is dropped: a slow connection stops us reading stdin until the keys went out.
            loop.remove_reader(stdin_fd)
            reading = False

    async def send_keys() -> None:
        nonlocal reading
        while True:
            await term.send(await keys.get())
            if not reading and not ended:
                loop.add_reader(stdin_fd, on_keys)
                reading = True

    def on_resize() -> None:
        size = shutil.get_terminal_size()
        loop.create_task(term.resize(size.lines, size.columns))

    loop.add_reader(stdin_fd, on_keys)
    if interactive:
        loop.add_signal_handler(signal.SIGWINCH, on_resize)
    sender = loop.create_task(send_keys())
    try:
        async for chunk in term.output():
            stdout.write(chunk)
            stdout.flush()
    finally:
        sender.cancel()
        if reading:
            loop.remove_reader(stdin_fd)
        if interactive:
            loop.remove_signal_handler(signal.SIGWINCH)


@contextlib.contextmanager
def _raw_input(stream: object) -> Iterator[bool]:
    """Raw mode on a terminal (every key goes to the remote as typed); True when it is one."""
    fd = stream.fileno()  # type: ignore[attr-defined]
    if not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
