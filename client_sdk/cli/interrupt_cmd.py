"""``corral interrupt``: stop the code running in a session, keeping the session."""
from __future__ import annotations

import click

from .context import call_api


@click.command("interrupt")
@click.argument("session_ref", metavar="SESSION")
def interrupt_command(session_ref: str) -> None:
    """Interrupt the code running in SESSION (like Ctrl-C on `corral exec`).

    The code gets KeyboardInterrupt (and is killed if it ignores that for a few
    seconds); the session and its variables stay. Does nothing when the
    session's interpreter is idle.
    """
    interrupted = call_api(lambda client: client.interrupt(session_ref))
    if interrupted:
        click.echo(f"interrupted the code running in {session_ref}")
    else:
        click.echo(f"nothing was running in {session_ref}", err=True)
