"""Decayed usage per user and project: what the fair-share queue policy weighs users by."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from .intervals import decayed_seconds
from .records import used_sessions

LOOKBACK_HALF_LIVES = 8  # older use weighs under 0.4 %: left out


@dataclass
class UsageVector:
    cpu_core_s: float = 0.0
    gpu_s: float = 0.0
    mem_byte_s: float = 0.0


async def decayed_usage(db: AsyncSession, now: datetime, half_life_s: float,
                        resource_group: str | None = None) -> dict[tuple[str, str], UsageVector]:
    """Keyed by ("user", id) and ("project", id): resource-seconds, each second weighted by
    2^(−age/half_life), over the last ``LOOKBACK_HALF_LIVES`` half-lives, in one query."""
    since = now - timedelta(seconds=half_life_s * LOOKBACK_HALF_LIVES)
    now_ts = now.timestamp()
    totals: dict[tuple[str, str], UsageVector] = {}
    async for used in used_sessions(db, since, now, resource_group):
        start = max(used.start, since).timestamp()
        end = (used.end or now).timestamp()
        weight = decayed_seconds(start, end, now_ts, half_life_s)
        if weight <= 0:
            continue
        keys = [("user", used.owner_id)] + ([("project", used.project_id)] if used.project_id else [])
        for key in keys:
            vector = totals.setdefault(key, UsageVector())
            vector.cpu_core_s += used.cpu * weight
            vector.gpu_s += used.gpu * weight
            vector.mem_byte_s += used.mem * weight
    return totals
