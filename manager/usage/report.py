"""Usage per day and per user or project: CPU-core-hours, GPU-hours (a share counts its fraction),
memory-GiB-hours and sessions, for sessions overlapping the window (running ones count up to now)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Project, User
from .intervals import day_start, split_by_day
from .records import used_sessions

GIB = float(1 << 30)


@dataclass
class UsageRow:
    day: date
    holder_kind: str  # user | project
    holder_id: str
    resource_group: str
    cpu_core_hours: float = 0.0
    gpu_hours: float = 0.0
    mem_gib_hours: float = 0.0
    sessions: int = 0
    name: str = field(default="")


@dataclass
class UsageReport:
    rows: list[UsageRow]
    sessions: int  # distinct sessions in the window (a row counts each session on each day it ran)


async def usage_report(
    db: AsyncSession, first: date, last: date, now: datetime, *, by: str = "user",
    resource_group: str | None = None, holder_ids: Iterable[str] | None = None,
) -> UsageReport:
    """Rows per (day, holder, group) for the days ``first``..``last`` (UTC, inclusive); ``by`` is
    ``user`` or ``project`` (sessions without a project are left out of the latter)."""
    since, until = day_start(first), min(day_start(last + timedelta(days=1)), now)
    wanted = set(holder_ids) if holder_ids is not None else None
    rows: dict[tuple[date, str, str], UsageRow] = {}
    counted = 0
    if until > since:
        async for used in used_sessions(db, since, until, resource_group):
            holder = used.owner_id if by == "user" else used.project_id
            if holder is None or (wanted is not None and holder not in wanted):
                continue
            start = max(used.start, since)
            end = min(used.end or now, until)
            pieces = split_by_day(start, end)
            counted += bool(pieces)
            for day, seconds in pieces:
                row = rows.setdefault((day, holder, used.resource_group),
                                      UsageRow(day, by, holder, used.resource_group))
                hours = seconds / 3600.0
                row.cpu_core_hours += used.cpu * hours
                row.gpu_hours += used.gpu * hours
                row.mem_gib_hours += used.mem / GIB * hours
                row.sessions += 1
    names = await _names(db, by, {row.holder_id for row in rows.values()})
    for row in rows.values():
        row.name = names.get(row.holder_id, row.holder_id)
    return UsageReport(sorted(rows.values(), key=lambda r: (r.day, r.name, r.resource_group)), counted)


async def _names(db: AsyncSession, by: str, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    model = User if by == "user" else Project
    column = User.username if by == "user" else Project.name
    return dict((await db.execute(select(model.id, column).where(model.id.in_(list(ids))))).all())
