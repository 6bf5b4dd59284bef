"""Decayed usage per user and project: what the fair-share queue policy weighs users by.

A second of use ``age`` seconds ago weighs ``2^(−age/half_life)``; each session's interval is
integrated analytically (`intervals.decayed_seconds`), over the last ``LOOKBACK_HALF_LIVES`` half-lives.
`decayed_usage` reads every session in that window in one streamed query; `DecayedUsageCache` gives the
same answer to a caller that asks every scheduling pass, re-reading only the sessions still running or
ended lately (what ended before only decays, by one factor for all).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from .intervals import decayed_seconds
from .records import UsedSession, used_sessions

LOOKBACK_HALF_LIVES = 8  # older use weighs under 0.4 %: left out
# A session whose end is this recent may not be committed yet when it is read: the cache does not settle it.
SETTLE_MARGIN_S = 120.0

Key = tuple[str, str]  # ("user", id) | ("project", id)


@dataclass
class UsageVector:
    cpu_core_s: float = 0.0
    gpu_s: float = 0.0
    mem_byte_s: float = 0.0

    def scaled(self, factor: float) -> "UsageVector":
        return UsageVector(self.cpu_core_s * factor, self.gpu_s * factor, self.mem_byte_s * factor)


def _keys(used: UsedSession) -> Iterable[Key]:
    yield ("user", used.owner_id)
    if used.project_id:
        yield ("project", used.project_id)


def _add(totals: dict[Key, UsageVector], used: UsedSession, weight: float) -> None:
    for key in _keys(used):
        vector = totals.get(key)
        if vector is None:
            vector = totals[key] = UsageVector()
        vector.cpu_core_s += used.cpu * weight
        vector.gpu_s += used.gpu * weight
        vector.mem_byte_s += used.mem * weight


def _weight(used: UsedSession, since: datetime, now: datetime, half_life_s: float) -> float:
    start = max(used.start, since).timestamp()
    end = (used.end or now).timestamp()
    return decayed_seconds(start, end, now.timestamp(), half_life_s)


async def decayed_usage(db: AsyncSession, now: datetime, half_life_s: float,
                        resource_group: str | None = None) -> dict[Key, UsageVector]:
    """Keyed by ("user", id) and ("project", id): resource-seconds, each second weighted by
    2^(−age/half_life), over the last ``LOOKBACK_HALF_LIVES`` half-lives, in one query."""
    since = now - timedelta(seconds=half_life_s * LOOKBACK_HALF_LIVES)
    totals: dict[Key, UsageVector] = {}
    async for used in used_sessions(db, since, now, resource_group):
        weight = _weight(used, since, now, half_life_s)
        if weight > 0:
            _add(totals, used, weight)
    return totals


@dataclass
class _Settled:
    at: datetime  # when ``totals`` were worth what they say
    before: datetime  # sessions that ended before this are in ``totals``
    totals: dict[Key, UsageVector]


class DecayedUsageCache:
    """`decayed_usage` for a caller that asks often (each scheduling pass).

    Sessions that ended more than ``SETTLE_MARGIN_S`` before a full read are *settled*: their sum only
    decays afterwards (times ``2^(−Δt/half_life)``). Other calls read just the sessions still running or
    ended since then. A full read every ``refresh_s`` lets settled use slide out of the look-back window
    and picks up anything a late writer added.
    """

    def __init__(self, half_life_s: float, refresh_s: float = 600.0) -> None:
        self.half_life_s = half_life_s
        self.refresh_s = refresh_s
        self._settled: dict[str | None, _Settled] = {}

    async def __call__(self, db: AsyncSession, now: datetime,
                       resource_group: str | None = None) -> dict[Key, UsageVector]:
        settled = self._settled.get(resource_group)
        age = (now - settled.at).total_seconds() if settled is not None else None
        if settled is None or age is None or age < 0 or age > self.refresh_s:
            settled = await self._full_read(db, now, resource_group)
            self._settled[resource_group] = settled
            age = 0.0
        factor = 2.0 ** (-age / self.half_life_s)
        totals = {key: vector.scaled(factor) for key, vector in settled.totals.items()}
        since = now - timedelta(seconds=self.half_life_s * LOOKBACK_HALF_LIVES)
        async for used in used_sessions(db, settled.before, now, resource_group):
            weight = _weight(used, since, now, self.half_life_s)
            if weight > 0:
                _add(totals, used, weight)
        return totals

    async def _full_read(self, db: AsyncSession, now: datetime, resource_group: str | None) -> _Settled:
        since = now - timedelta(seconds=self.half_life_s * LOOKBACK_HALF_LIVES)
        before = now - timedelta(seconds=SETTLE_MARGIN_S)
        totals: dict[Key, UsageVector] = {}
        async for used in used_sessions(db, since, before, resource_group):
            if used.end is not None and used.end <= before:
                weight = _weight(used, since, now, self.half_life_s)
                if weight > 0:
                    _add(totals, used, weight)
        return _Settled(now, before, totals)
