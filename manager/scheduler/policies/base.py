"""What every queue policy is given and must answer."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Mapping, Protocol, Sequence

from corral.common.slots import CPU, CUDA_DEVICE, CUDA_SHARES, MEM

from ..pending import PendingSession

RESOURCES = ("cpu", "mem", "gpu")
Vector = dict[str, float]  # resource ("cpu" cores, "mem" bytes, "gpu" GPUs) -> amount


def gpu_amount(slots: Mapping[str, Decimal]) -> Decimal:
    """GPUs held: whole devices count 1 each, a share its fraction."""
    return Decimal(slots.get(CUDA_DEVICE, 0)) + Decimal(slots.get(CUDA_SHARES, 0))


def usage_vector(slots: Mapping[str, Decimal], times: int = 1) -> Vector:
    return {
        "cpu": float(slots.get(CPU, 0)) * times,
        "mem": float(slots.get(MEM, 0)) * times,
        "gpu": float(gpu_amount(slots)) * times,
    }


def capacity_vector(slots: Mapping[str, Decimal]) -> Vector:
    """A node's capacity as a vector: its GPUs are its devices (its ``cuda.shares`` are the same GPUs)."""
    return {"cpu": float(slots.get(CPU, 0)), "mem": float(slots.get(MEM, 0)), "gpu": float(slots.get(CUDA_DEVICE, 0))}


def add_vector(into: Vector, more: Mapping[str, float], scale: float = 1.0) -> None:
    for name, amount in more.items():
        into[name] = into.get(name, 0.0) + amount * scale


@dataclass
class PolicyContext:
    """What a pass knows about the group when it orders its queue.

    ``capacity``: the group's total (cpu, mem, gpu). ``running``: per user, what their active sessions in
    the group hold now. ``decayed``: per user, their decayed past usage (resource-seconds) in the group.
    ``shares``: per user, their fair-share weight (the user's times their project's).
    """

    now: datetime
    capacity: Vector = field(default_factory=dict)
    running: dict[str, Vector] = field(default_factory=dict)
    decayed: dict[str, Vector] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)


class QueuePolicy(Protocol):
    name: str

    def start(self, pending: Sequence[PendingSession], ctx: PolicyContext) -> None: ...

    def next(self) -> PendingSession | None: ...

    def on_placed(self, session: PendingSession) -> None: ...

    def on_skipped(self, session: PendingSession) -> None: ...

    def factors(self, session: PendingSession) -> dict[str, float]: ...
