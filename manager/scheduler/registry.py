"""The scheduler's swappable stages, and the configured defaults checked at start.

``[scheduler] queue`` and ``score`` are the queue policy and scorer of a resource group that has no
row yet; groups carry their own (see `groups`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from corral.common.errors import ConfigError

from ..config import SchedulerConfig
from .pending import PendingReader
from .policies import POLICY_NAMES
from corral.common.resource_groups import SCORER_NAMES


@dataclass(frozen=True)
class SchedulerStages:
    """``queue`` reads the pending sessions (tests wrap it to force interleavings)."""

    queue: PendingReader = field(default_factory=PendingReader)


def build_stages(config: SchedulerConfig) -> SchedulerStages:
    if config.queue not in POLICY_NAMES:
        raise ConfigError(f"unknown scheduler queue {config.queue!r}; choose from {', '.join(POLICY_NAMES)}")
    if config.score not in SCORER_NAMES:
        raise ConfigError(f"unknown scheduler score {config.score!r}; choose from {', '.join(SCORER_NAMES)}")
    if config.filter != "fits":
        raise ConfigError(f"unknown scheduler filter {config.filter!r}; choose from fits")
    return SchedulerStages()
