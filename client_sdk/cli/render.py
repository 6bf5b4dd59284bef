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

from ..models import Agent, Session, StatusChange

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


def allocation_summary(allocation: Mapping[str, Any]) -> str:
    """One line: "cpu 2, mem 1.0 GiB, 2 GPUs (whole)" or "…, GPU 3 share 0.25"; details in `allocation_table`."""
    if not allocation:
        return "-"
    parts = [f"cpu {allocation.get('cpu', '-')}"]
    if allocation.get("mem") is not None:
        parts.append(f"mem {format_slot('mem', allocation['mem'])}")
    shares = allocation.get("gpu_shares") or {}
    if shares and allocation.get("gpu_whole"):
        parts.append(f"{len(shares)} GPU{'s' if len(shares) != 1 else ''} ({', '.join(sorted(shares, key=int))})")
    elif shares:
        parts.append(", ".join(f"GPU {i} share {v}" for i, v in sorted(shares.items(), key=lambda kv: int(kv[0]))))
    return ", ".join(parts)


def format_command(command: str | list[str] | None) -> str:
    if command is None:
        return "-"
    if isinstance(command, list):
        return " ".join(command)
    return command


def session_table(sessions: Sequence[Session]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "NAME", "STATUS", "TYPE", "IMAGE", "RESOURCES", "GROUP", "PROJECT", "PRIO", "AGENT",
                   "CREATED"):
        table.add_column(column, no_wrap=column in ("ID", "NAME", "STATUS"))
    for s in sessions:
        table.add_row(
            s.short_id,
            s.name,
            status_text(s.status),
            s.type,
            s.image,
            format_slots(s.requested_slots),
            s.resource_group,
            s.project or "-",
            str(s.priority),
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
    for column in ("NAME", "KERNEL", "STATUS", "AGENT", "CONTAINER", "ALLOCATION", "EXIT"):
        table.add_column(column, no_wrap=column != "ALLOCATION")
    for k in session.kernels:
        table.add_row(
            k.name,
            k.id[:8],
            status_text(k.status),
            k.agent_id or "-",
            (k.container_id or "-")[:12],
            allocation_summary(k.allocation),
            "-" if k.exit_code is None else str(k.exit_code),
        )
    return table


def allocation_table(allocation: Mapping[str, Any]) -> RenderableType:
    """A kernel's allocation, readable: CPU (cores, NUMA nodes), memory, then one row per GPU."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    cores = allocation.get("cpu_cores") or []
    cpu = str(allocation.get("cpu", "-"))
    if cores:
        from corral.common.gpu.cpu_list import format_cpu_list

        cpu += f" (cores {format_cpu_list(cores)})"
    facts.add_row("CPU", cpu)
    numa = allocation.get("numa_nodes") or []
    if numa:
        facts.add_row("NUMA nodes", ", ".join(map(str, numa)) + (" (spilled beyond the GPUs' nodes)"
                                                                if allocation.get("cpu_spilled") else ""))
    if allocation.get("mem") is not None:
        facts.add_row("Memory", format_slot("mem", allocation.get("mem")))
    known = {"cpu", "cpu_cores", "numa_nodes", "cpu_spilled", "mem", "gpus", "gpu_shares", "gpu_whole"}
    for key, value in allocation.items():
        if key not in known and value not in (None, [], {}, ""):
            facts.add_row(key, format_slot(key, value) if not isinstance(value, (dict, list)) else _compact(value))
    gpus = allocation.get("gpus") or [
        {"index": int(i), "share": share} for i, share in (allocation.get("gpu_shares") or {}).items()
    ]
    if not gpus:
        return facts
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("GPU", "MODEL", "SHARE", "MEM LIMIT", "UUID"):
        table.add_column(column, justify="right" if column in ("GPU", "SHARE", "MEM LIMIT") else "left")
    for g in gpus:
        limit = g.get("mem_limit")
        table.add_row(str(g.get("index", "-")), str(g.get("model", "-")),
                      "whole" if allocation.get("gpu_whole") else str(g.get("share", "-")),
                      "-" if limit is None else format_size(int(limit)), str(g.get("uuid", "-")))
    facts.add_row("GPUs", table)
    return facts


def mount_table(mounts: Sequence[Mapping[str, Any]]) -> Table:
    """The session's vfolder mounts: which vfolder (owner/name), where, and read-only why."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("VFOLDER", "PATH", "MODE", "NOTE"):
        table.add_column(column)
    for m in mounts:
        owner = m.get("owner")
        name = f"{owner}/{m.get('name')}" if owner else str(m.get("name", "-"))
        table.add_row(name, str(m.get("container_path", "-")), "ro" if m.get("read_only") else "rw",
                      str(m.get("read_only_reason") or ""))
    return table


def mount_warnings(session: Session) -> list[str]:
    """One line per mount that is not what was asked for (read-only over quota, …): for create/run to print."""
    lines = []
    for m in session.raw.get("mounts") or []:
        reason = m.get("read_only_reason") or ""
        if m.get("read_only") and reason and reason != "asked":
            lines.append(f"{m.get('name')}: {reason}" if not reason.startswith("vfolder") else reason)
    return lines


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
        ("Group", session.resource_group),
        ("Project", session.project or "-"),
        ("Priority", str(session.priority)),
        ("Agent", session.agent_id or "-"),
        *([("Cluster", f"{session.cluster_size} kernels, {session.cluster_mode}")] if session.cluster_size > 1 else []),
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
        for k in session.kernels:
            if k.allocation:
                parts += [Text(f"\nAllocation of kernel {k.name} ({k.id[:8]})", style="bold underline"),
                          allocation_table(k.allocation)]
    mounts = session.raw.get("mounts") or []
    if mounts:
        parts += [Text("\nMounts", style="bold underline"), mount_table(mounts)]
    if session.status_history:
        parts += [Text("\nHistory", style="bold underline"), history_table(session.status_history)]
    return Panel(Group(*parts), title=f"session {session.name}", title_align="left", expand=False)


def _share(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(1)


def _num(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def gpu_summary(agent: Agent) -> str:
    """Whole GPUs free, and what is in use split into whole and shared, e.g.
    "3 free of 8 (5 in use: 4 whole, 1 shared 0.25)"."""
    gpus = agent.gpus
    if not gpus:
        slot = "cuda.device" if "cuda.device" in agent.available_slots else "cuda.shares"
        return format_usage(agent.occupied_slots, agent.available_slots, slot)
    used = [Decimal(1) - _share(g.get("free_share", "1")) for g in gpus]
    free = sum(1 for u in used if u == 0)
    whole = sum(1 for u in used if u >= 1)
    shared = [u for u in used if 0 < u < 1]
    if free == len(gpus):
        return f"{free} free of {len(gpus)}"
    parts = [f"{whole} whole"] if whole else []
    if shared:
        parts.append(f"{len(shared)} shared {_num(sum(shared, Decimal(0)))}")
    return f"{free} free of {len(gpus)} ({len(gpus) - free} in use: {', '.join(parts)})"


def agent_gpu_table(agent: Agent) -> Table:
    """One row per GPU of ``agent``: index, model, memory, NUMA node, allocation."""
    table = Table(box=None, pad_edge=False, header_style="bold", title=f"{agent.id}: GPUs {gpu_summary(agent)}",
                  title_justify="left")
    for column in ("GPU", "MODEL", "MEMORY", "NUMA", "ALLOCATED", "FREE"):
        table.add_column(column, justify="right" if column in ("GPU", "MEMORY", "ALLOCATED", "FREE") else "left")
    for g in agent.gpus:
        free = _share(g.get("free_share", "1"))
        used = Decimal(1) - free
        allocated = "whole" if used >= 1 else ("-" if used == 0 else f"shared {_num(used)}")
        table.add_row(
            str(g.get("index")), str(g.get("model", "-")), format_size(int(g.get("memory") or 0)),
            "-" if g.get("numa_node") is None else str(g.get("numa_node")), allocated, _num(free),
        )
    return table


def agent_table(agents: Sequence[Agent]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "STATUS", "ADDRESS", "CPU", "MEM", "GPUS", "IMAGES", "HEARTBEAT", "VERSION", "NOTE"):
        table.add_column(column, no_wrap=column in ("ID", "STATUS"))
    for a in agents:
        gpu_usage = gpu_summary(a)
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
            Text(a.status_reason, style="bold yellow" if a.status_reason.startswith("overcommitted") else "")
            if a.status_reason else "",
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
