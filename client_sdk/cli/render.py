"""Rich tables and panels for sessions, agents and images."""
from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Sequence

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from corral.common.slots import format_size

from ..models import Agent, Image, Session, StatusChange

STATUS_STYLES = {
    "PENDING": "yellow",
    "SCHEDULED": "yellow",
    "PREPARING": "cyan",
    "RUNNING": "green",
    "TERMINATING": "dim",
    "TERMINATED": "dim",
    "ERROR": "bold red",
    "CANCELLED": "magenta",
    "ALIVE": "green",
    "LOST": "bold red",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def format_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is not None:
        value = value.astimezone()
    return value.strftime("%Y-%m-%d %H:%M:%S")


def format_slot(name: str, value: Any) -> str:
    if name == "mem" or name.endswith(".mem"):
        try:
            return format_size(Decimal(str(value)))
        except (InvalidOperation, ValueError):
            return str(value)
    return str(value)


def format_slots(slots: Mapping[str, Any]) -> str:
    if not slots:
        return "-"
    return ", ".join(f"{name} {format_slot(name, value)}" for name, value in slots.items())


def format_usage(occupied: Mapping[str, str], available: Mapping[str, str], slot: str) -> str:
    if slot not in available:
        return "-"
    return f"{format_slot(slot, occupied.get(slot, '0'))} / {format_slot(slot, available[slot])}"


def _compact(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return "-" if value is None else str(value)


def format_allocation(allocation: Mapping[str, Any]) -> str:
    if not allocation:
        return "-"
    parts = []
    for key, value in allocation.items():
        parts.append(f"{key} {format_slot(key, value) if not isinstance(value, (dict, list)) else _compact(value)}")
    return ", ".join(parts)


def format_command(command: str | list[str] | None) -> str:
    if command is None:
        return "-"
    if isinstance(command, list):
        return " ".join(command)
    return command


def session_table(sessions: Sequence[Session]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "NAME", "STATUS", "TYPE", "IMAGE", "RESOURCES", "AGENT", "CREATED"):
        table.add_column(column, no_wrap=column in ("ID", "NAME", "STATUS"))
    for s in sessions:
        table.add_row(
            s.short_id,
            s.name,
            status_text(s.status),
            s.type,
            s.image,
            format_slots(s.requested_slots),
            s.agent_id or "-",
            format_time(s.created_at),
        )
    return table


def history_table(history: Sequence[StatusChange]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("AT", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("REASON")
    for change in history:
        table.add_row(format_time(change.at), status_text(change.status), change.reason or "")
    return table


def kernel_table(session: Session) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("KERNEL", "STATUS", "AGENT", "CONTAINER", "ALLOCATION", "EXIT"):
        table.add_column(column, no_wrap=column != "ALLOCATION")
    for k in session.kernels:
        table.add_row(
            k.id[:8],
            status_text(k.status),
            k.agent_id or "-",
            (k.container_id or "-")[:12],
            format_allocation(k.allocation),
            "-" if k.exit_code is None else str(k.exit_code),
        )
    return table


def session_panel(session: Session) -> Panel:
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    status = status_text(session.status)
    if session.status_reason:
        status.append(f"  ({session.status_reason})", style="")
    rows: list[tuple[str, RenderableType]] = [
        ("ID", session.id),
        ("Name", session.name),
        ("Status", status),
        ("Type", session.type),
        ("Image", session.image),
        ("Owner", session.owner or "-"),
        ("Agent", session.agent_id or "-"),
        ("Command", format_command(session.command)),
        ("Requested", format_slots(session.requested_slots)),
        ("Created", format_time(session.created_at)),
        ("Started", format_time(session.started_at)),
        ("Terminated", format_time(session.terminated_at)),
        ("Exit code", "-" if session.exit_code is None else str(session.exit_code)),
    ]
    if session.env:
        rows.append(("Env", ", ".join(sorted(session.env))))
    for label, value in rows:
        facts.add_row(label, value)
    parts: list[RenderableType] = [facts]
    if session.kernels:
        parts += [Text("\nKernels", style="bold underline"), kernel_table(session)]
    if session.status_history:
        parts += [Text("\nHistory", style="bold underline"), history_table(session.status_history)]
    return Panel(Group(*parts), title=f"session {session.name}", title_align="left", expand=False)


def agent_table(agents: Sequence[Agent]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "STATUS", "ADDRESS", "CPU", "MEM", "GPU", "IMAGES", "HEARTBEAT", "VERSION"):
        table.add_column(column, no_wrap=column in ("ID", "STATUS"))
    for a in agents:
        gpu_slot = "cuda.device" if "cuda.device" in a.available_slots else "cuda.shares"
        gpu_usage = format_usage(a.occupied_slots, a.available_slots, gpu_slot)
        table.add_row(
            a.id,
            status_text(a.status),
            a.address or "-",
            format_usage(a.occupied_slots, a.available_slots, "cpu"),
            format_usage(a.occupied_slots, a.available_slots, "mem"),
            gpu_usage,
            str(len(a.images)),
            format_time(a.last_heartbeat),
            a.version or "-",
        )
    return table


def image_table(images: Sequence[Image]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "ID", "SIZE", "AGENTS"):
        table.add_column(column, no_wrap=column != "AGENTS")
    for image in images:
        image_id = image.image_id.removeprefix("sha256:")[:12]
        table.add_row(
            image.name,
            image_id or "-",
            "-" if image.size is None else format_size(image.size),
            ", ".join(image.agents) or "-",
        )
    return table


def status_change_line(change: StatusChange) -> Text:
    line = Text(f"{format_time(change.at)}  ")
    if change.is_progress:  # news within the current status, not a change of it
        line.append(f"{change.status} …", style="dim")
    else:
        line.append_text(status_text(change.status))
    if change.reason:
        line.append(f"  {change.reason}")
    return line
