"""Scheduler stages by configured name, so each can be swapped in config."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from corral.common.errors import ConfigError

from ..config import SchedulerConfig
from .filter import FitsFilter, NodeFilter
from .queue import FifoQueue, LifoQueue, PendingQueue
from .score import CandidateScorer, FirstFitScorer, TopologyScorer

QUEUES: dict[str, Callable[[], PendingQueue]] = {"fifo": FifoQueue, "lifo": LifoQueue}
FILTERS: dict[str, Callable[[], NodeFilter]] = {"fits": FitsFilter}
SCORERS: dict[str, Callable[[], CandidateScorer]] = {"first-fit": FirstFitScorer, "topology": TopologyScorer}


def _pick(kind: str, table: dict[str, Callable[[], object]], name: str) -> object:
    try:
        return table[name]()
    except KeyError:
        raise ConfigError(f"unknown scheduler {kind} {name!r}; choose from {', '.join(sorted(table))}") from None


@dataclass(frozen=True)
class SchedulerStages:
    queue: PendingQueue
    filter: NodeFilter
    scorer: CandidateScorer


def build_stages(config: SchedulerConfig) -> SchedulerStages:
    return SchedulerStages(
        queue=_pick("queue", QUEUES, config.queue),  # type: ignore[arg-type]
        filter=_pick("filter", FILTERS, config.filter),  # type: ignore[arg-type]
        scorer=_pick("score", SCORERS, config.score),  # type: ignore[arg-type]
    )
