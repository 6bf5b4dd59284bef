"""Free GPU shares of one node, and taking and giving them back.

Every device has a free share between 0 and 1 (1.0 = fully free). A
whole-GPU allocation takes 1.0 from each chosen device; a fractional one takes
its share from one device (or, above 1.0, 1.0 from several plus the rest from
one). An allocation is a plain ``{device index: share}`` mapping, the same
shape for both kinds, so releasing it restores capacity exactly. Pure
bookkeeping: the node-level allocator composes it with CPU and memory.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from ..errors import Conflict, InvalidRequest
from .allocator import SHARE_QUANTUM, WHOLE, pick_gpu_fraction, pick_whole_gpus
from .topology import GpuTopology

GpuAllocation = dict[int, Decimal]


class GpuNodeState:
    def __init__(self, topology: GpuTopology, free_shares: Mapping[int, Decimal] | None = None) -> None:
        self.topology = topology
        self._free: dict[int, Decimal] = {d.index: WHOLE for d in topology.devices}
        if free_shares is not None:
            for index, amount in free_shares.items():
                amount = Decimal(amount)
                self._check_device(index)
                if not 0 <= amount <= WHOLE or amount % SHARE_QUANTUM:
                    raise InvalidRequest(f"free share of GPU {index} must be within 0..1 in steps of 0.01 (got {amount})")
                self._free[index] = amount

    # Queries -----------------------------------------------------------
    @property
    def free_shares(self) -> dict[int, Decimal]:
        return dict(self._free)

    def fully_free(self) -> frozenset[int]:
        return frozenset(i for i, amount in self._free.items() if amount == WHOLE)

    def total_free(self) -> Decimal:
        return sum(self._free.values(), Decimal(0))

    def used(self) -> Decimal:
        """Shares in use, summed over devices (a whole GPU counts 1.0)."""
        return len(self._free) - self.total_free()

    # Planning (no change) ---------------------------------------------
    def plan_whole(self, count: int) -> GpuAllocation | None:
        chosen = pick_whole_gpus(self.topology, self.fully_free(), count)
        return None if chosen is None else {i: WHOLE for i in chosen}

    def plan_fraction(self, share: Decimal) -> GpuAllocation | None:
        return pick_gpu_fraction(self.topology, self._free, Decimal(share))

    # Changes -------------------------------------------------------------
    def allocate_whole(self, count: int) -> GpuAllocation | None:
        """Take ``count`` whole GPUs; None (and no change) when they are not there."""
        allocation = self.plan_whole(count)
        if allocation is not None:
            self.reserve(allocation)
        return allocation

    def allocate_fraction(self, share: Decimal) -> GpuAllocation | None:
        allocation = self.plan_fraction(share)
        if allocation is not None:
            self.reserve(allocation)
        return allocation

    def reserve(self, allocation: Mapping[int, Decimal]) -> None:
        """Take exactly these shares (e.g. the scheduler's decision, re-applied by the agent)."""
        checked = self._checked(allocation)
        short = [i for i, amount in checked.items() if amount > self._free[i]]
        if short:
            detail = ", ".join(f"GPU {i}: wants {checked[i]}, free {self._free[i]}" for i in short)
            raise Conflict(f"GPU shares not available ({detail})")
        for index, amount in checked.items():
            self._free[index] -= amount

    def release(self, allocation: Mapping[int, Decimal]) -> None:
        """Give back shares taken before; refuses to free more than a device has."""
        checked = self._checked(allocation)
        over = [i for i, amount in checked.items() if self._free[i] + amount > WHOLE]
        if over:
            raise Conflict(f"releasing more GPU share than was taken on GPU(s) {over}")
        for index, amount in checked.items():
            self._free[index] += amount

    # Wire format ---------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        # Decimals as strings so JSON never rounds them (as ResourceSlot does).
        return {"free_shares": {str(i): str(amount) for i, amount in sorted(self._free.items())}}

    @classmethod
    def from_json(cls, topology: GpuTopology, data: Mapping[str, Any] | None) -> "GpuNodeState":
        shares = (data or {}).get("free_shares", {})
        return cls(topology, {int(i): Decimal(str(amount)) for i, amount in shares.items()})

    # Helpers -------------------------------------------------------------
    def _check_device(self, index: int) -> None:
        if index not in self._free:
            raise InvalidRequest(f"GPU {index} is not on this node")

    def _checked(self, allocation: Mapping[int, Decimal]) -> dict[int, Decimal]:
        checked: dict[int, Decimal] = {}
        for index, amount in allocation.items():
            self._check_device(index)
            amount = Decimal(amount)
            if amount <= 0 or amount > WHOLE or amount % SHARE_QUANTUM:
                raise InvalidRequest(f"GPU share must be within 0.01..1 in steps of 0.01 (got {amount} on GPU {index})")
            checked[index] = amount
        return checked

    def __repr__(self) -> str:
        shares = ", ".join(f"{i}:{amount}" for i, amount in sorted(self._free.items()))
        return f"GpuNodeState({shares})"
