"""Resource groups as the scheduler uses them: queue policy, backfill, scorers (from the database)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import ResourceGroup
from .scorers import ScoringPlan, parse_scorers


@dataclass(frozen=True)
class GroupSettings:
    name: str
    queue_policy: str
    backfill: bool
    preemption: bool
    scorers: tuple[tuple[str, float], ...]

    def plan(self) -> ScoringPlan:
        return ScoringPlan(parse_scorers([{"name": n, "weight": w} for n, w in self.scorers]))


def default_settings(name: str, queue_policy: str = "fifo", scorer: str = "topology") -> GroupSettings:
    """A group with no row yet (an agent named it before the registry created it)."""
    return GroupSettings(name, queue_policy, True, False, ((scorer, 1.0),))


def _scorers(spec: list[Any] | None) -> tuple[tuple[str, float], ...]:
    return tuple((s.name, s.weight) for s in parse_scorers(spec))


async def load_groups(db: AsyncSession) -> dict[str, GroupSettings]:
    rows = (await db.scalars(select(ResourceGroup))).all()
    return {
        row.name: GroupSettings(row.name, row.queue_policy, bool(row.backfill), bool(row.preemption),
                                _scorers(row.scorers))
        for row in rows
    }
