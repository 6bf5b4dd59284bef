"""``corral exec``: run code in an existing session."""
from __future__ import annotations

import click

from ..api import AsyncCorralClient
from .context import cli_state, run_async
from .execution import stream_execution
from .options import read_code


@click.command("exec")
@click.option("--kernel", "-k", default=None, metavar="NAME",
              help="Which kernel of a cluster session: main1 (the default), sub1 …")
@click.argument("session_ref", metavar="SESSION")
@click.argument("code")
def exec_command(kernel: str | None, session_ref: str, code: str) -> None:
    """Run CODE in SESSION's interpreter; stream output, exit with its status.

    CODE is Python source, `-` for stdin, or `@file.py`. State (variables,
    imports) persists between calls in the same session.

    Ctrl-C interrupts the code (KeyboardInterrupt in the session) and shows
    its output until it stops; a second Ctrl-C stops waiting (the code may
    still run: `corral interrupt SESSION`). Both exit with 130.
    """
    source = read_code(code)
    client = cli_state().client()
    exit_status = run_async(_exec(client, session_ref, source, kernel))
    click.get_current_context().exit(exit_status)


async def _exec(client: AsyncCorralClient, ref: str, code: str, kernel: str | None = None) -> int:
    async with client:
        return await stream_execution(
            client, ref, code, kernel=kernel,
            detach_hint=f"stopped waiting; the code may still be running in {ref}: `corral interrupt {ref}`",
        )
