"""Queue policies by the name a resource group gives."""
from __future__ import annotations

from typing import Callable

from corral.common.errors import InvalidRequest
from corral.common.resource_groups import QUEUE_POLICIES

from .base import QueuePolicy
from .drf import Drf
from .fair_share import FairShare, FairShareWeights
from .ordered import Fifo, Lifo

POLICY_NAMES = QUEUE_POLICIES


def make_policy(name: str, weights: FairShareWeights | None = None) -> QueuePolicy:
    makers: dict[str, Callable[[], QueuePolicy]] = {
        "fifo": Fifo, "lifo": Lifo, "drf": Drf, "fair-share": lambda: FairShare(weights),
    }
    try:
        return makers[name]()
    except KeyError:
        raise InvalidRequest(f"unknown queue policy {name!r}; choose from {', '.join(POLICY_NAMES)}") from None
