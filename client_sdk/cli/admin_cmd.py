"""``corral admin …``: cluster administration (admin keypairs only)."""
from __future__ import annotations

import click

from ..models import Agent
from .context import cli_state, run_async
from .output import console, print_json
from .options import json_option
from .render import agent_table


@click.group("admin")
def admin_group() -> None:
    """Cluster administration."""


@admin_group.command("agents")
@json_option
def agents_command(as_json: bool) -> None:
    """Agents with their status, capacity and usage."""
    client = cli_state().client()

    async def fetch() -> list[Agent]:
        async with client:
            return await client.list_agents()

    agents = run_async(fetch())
    if as_json:
        print_json([a.raw for a in agents])
    elif not agents:
        click.echo("no agents registered", err=True)
    else:
        console().print(agent_table(agents))
