"""Usage arithmetic: splitting by UTC day and the decayed integral."""
from __future__ import annotations

import math
from datetime import date, datetime, timezone

import pytest

from corral.manager.usage.intervals import decayed_seconds, split_by_day

UTC = timezone.utc


def test_an_interval_is_split_at_each_utc_midnight() -> None:
    start = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    end = datetime(2026, 3, 3, 1, 30, tzinfo=UTC)
    assert split_by_day(start, end) == [
        (date(2026, 3, 1), 7200.0), (date(2026, 3, 2), 86400.0), (date(2026, 3, 3), 5400.0)]
    assert split_by_day(end, start) == []
    assert sum(s for _, s in split_by_day(start, end)) == (end - start).total_seconds()


def test_decayed_seconds_halve_per_half_life_and_add_up() -> None:
    half = 3600.0
    now = 10 * half
    recent = decayed_seconds(now - 1, now, now, half)
    assert recent == pytest.approx(1.0, rel=1e-3)
    old = decayed_seconds(now - half - 1, now - half, now, half)
    assert old == pytest.approx(0.5, rel=1e-3)
    whole = decayed_seconds(0, now, now, half)
    parts = decayed_seconds(0, now / 2, now, half) + decayed_seconds(now / 2, now, now, half)
    assert whole == pytest.approx(parts)
    assert whole == pytest.approx(half / math.log(2) * (1 - 2 ** -10))
    assert decayed_seconds(now, now + 100, now, half) == 0.0  # the future is not usage yet
