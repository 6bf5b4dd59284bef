"""``corral queue``: pending sessions in the order the scheduler will consider them."""
from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from ..models import GroupQueue
from .context import call_api
from .options import json_option
from .output import console, print_json


def _factors(factors: dict[str, float]) -> str:
    return ", ".join(f"{name.replace('_', ' ')} {value:g}" for name, value in factors.items())


def _slots(slots: dict[str, str]) -> str:
    parts = []
    for name in ("cpu", "mem", "cuda.device", "cuda.shares"):
        if name in slots and slots[name] not in ("0", "0.00"):
            value = slots[name]
            if name == "mem":
                value = f"{int(value) / 2**30:g}G"
            parts.append(f"{name}={value}")
    return " ".join(parts)


def queue_table(group: GroupQueue) -> Table:
    mode = f"{group.queue_policy}{' + backfill' if group.backfill else ', strict order'}"
    table = Table(title=f"resource group {escape(group.group)} ({mode})", title_justify="left")
    for column in ("#", "session", "owner", "request", "prio", "factors", "now"):
        table.add_column(column, overflow="fold")
    for entry in group.entries:
        now = f"starts on {entry.would_start_on}" if entry.would_start_on else entry.reason
        table.add_row(str(entry.position), escape(entry.name or entry.session_id[:8]), escape(entry.owner),
                      _slots(entry.requested_slots), str(entry.priority), _factors(entry.factors), escape(now))
    return table


@click.command("queue")
@click.option("--group", "-g", default=None, help="Only this resource group.")
@json_option
def queue_command(group: str | None, as_json: bool) -> None:
    """Pending sessions in the order the scheduler will consider them.

    Per resource group: position, request, priority, the queue policy's factors (dominant
    share, fair-share factor …), why each waits, and the head of the queue's reservation.
    """
    groups = call_api(lambda client: client.queue(group))
    if as_json:
        print_json([g.raw for g in groups])
        return
    if not groups:
        click.echo("no sessions are waiting" + (f" in resource group {group}" if group else ""))
        return
    for entry in groups:
        console().print(queue_table(entry))
        head = entry.head_reservation
        if head is not None:
            when = head.start_at.strftime("%Y-%m-%d %H:%M UTC") if head.start_at else "unknown"
            click.echo(f"head of the queue: session {head.session_id[:8]} reserved on {head.agent_id} "
                       f"from about {when}")
