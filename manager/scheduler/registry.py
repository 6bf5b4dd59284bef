"""Scheduler stages by configured name, so each can be swapped in config."""
from __future__ import annotations

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


def build_stages(config: SchedulerConfig) -> tuple[PendingQueue, NodeFilter, CandidateScorer]:
    return (
        _pick("queue", QUEUES, config.queue),  # type: ignore[return-value]
        _pick("filter", FILTERS, config.filter),
        _pick("score", SCORERS, config.score),
    )
