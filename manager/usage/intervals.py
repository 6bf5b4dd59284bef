"""The arithmetic of usage over time: splitting a session's interval by UTC day, and integrating an
exponentially decaying weight over it."""
from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def split_by_day(start: datetime, end: datetime) -> list[tuple[date, float]]:
    """(UTC day, seconds of [start, end) that fall on it), in order; nothing when end <= start."""
    pieces: list[tuple[date, float]] = []
    cursor = start.astimezone(timezone.utc)
    end = end.astimezone(timezone.utc)
    while cursor < end:
        next_day = day_start(cursor.date() + timedelta(days=1))
        piece_end = min(next_day, end)
        pieces.append((cursor.date(), (piece_end - cursor).total_seconds()))
        cursor = piece_end
    return pieces


def decayed_seconds(start_ts: float, end_ts: float, now_ts: float, half_life_s: float) -> float:
    """∫ 2^(−(now − t)/half_life) dt over [start, end] (clipped at now): one second of use ``age`` ago
    counts 2^(−age/half_life)."""
    end_ts = min(end_ts, now_ts)
    if end_ts <= start_ts:
        return 0.0
    rate = math.log(2) / half_life_s
    return (math.exp(-rate * (now_ts - end_ts)) - math.exp(-rate * (now_ts - start_ts))) / rate
