"""Resource slots: a mapping of slot name -> exact Decimal amount (DESIGN §4).

Known slots: ``cpu`` (cores), ``mem`` (bytes), ``cuda.device`` (whole GPUs),
``cuda.shares`` (fraction of a GPU, 1.0 = one whole GPU, quantum 0.01).
Requests and capacities use the same type; arithmetic is exact.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Iterable, Iterator, Mapping

from .errors import InvalidRequest

CPU = "cpu"
MEM = "mem"
CUDA_DEVICE = "cuda.device"
CUDA_SHARES = "cuda.shares"

KNOWN_SLOTS = (CPU, MEM, CUDA_DEVICE, CUDA_SHARES)
# The smallest step each slot accepts; amounts must be whole multiples of it.
QUANTUM: dict[str, Decimal] = {
    CPU: Decimal("0.01"),
    MEM: Decimal(1),
    CUDA_DEVICE: Decimal(1),
    CUDA_SHARES: Decimal("0.01"),
}
# Sanity ceilings for a single request: anything above is a typo, not a job.
MAX_REQUEST: dict[str, Decimal] = {
    CPU: Decimal(4096),
    MEM: Decimal(64 * 2**40),
    CUDA_DEVICE: Decimal(256),
    CUDA_SHARES: Decimal(256),
}

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}


def parse_size(text: str | int) -> int:
    """Parse '512m', '4G', '1.5GiB', '1024' into bytes (binary units)."""
    if isinstance(text, int):
        if text < 0:
            raise InvalidRequest(f"size must not be negative: {text}")
        return text
    match = _SIZE_RE.match(str(text))
    if not match:
        raise InvalidRequest(f"not a size: {text!r} (use e.g. 512m, 4g, 1.5GiB)")
    number, unit, _ = match.groups()
    return int(Decimal(number) * _SIZE_UNITS[unit.lower()])


def format_size(num: int | Decimal) -> str:
    value = Decimal(num)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def to_decimal(value: object, slot: str = "value") -> Decimal:
    if isinstance(value, bool):
        raise InvalidRequest(f"{slot}: not a number: {value!r}")
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvalidRequest(f"{slot}: not a number: {value!r}") from None
    if not result.is_finite():
        raise InvalidRequest(f"{slot}: not a finite number: {value!r}")
    return result


class ResourceSlot(Mapping[str, Decimal]):
    """Immutable slot-name -> Decimal mapping with exact arithmetic.

    Missing slots read as zero, so ``a - b`` and ``a <= b`` work across
    different key sets.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, object] | Iterable[tuple[str, object]] = ()) -> None:
        items = data.items() if isinstance(data, Mapping) else data
        self._data: dict[str, Decimal] = {}
        for key, value in items:
            amount = to_decimal(value, key)
            if amount != 0:
                self._data[key] = amount

    # Mapping protocol -------------------------------------------------
    def __getitem__(self, key: str) -> Decimal:
        return self._data.get(key, Decimal(0))

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    # Arithmetic -------------------------------------------------------
    def __add__(self, other: Mapping[str, Decimal]) -> "ResourceSlot":
        keys = set(self._data) | set(other)
        return ResourceSlot({k: self[k] + Decimal(other.get(k, 0)) for k in keys})

    def __sub__(self, other: Mapping[str, Decimal]) -> "ResourceSlot":
        keys = set(self._data) | set(other)
        return ResourceSlot({k: self[k] - Decimal(other.get(k, 0)) for k in keys})

    def fits_in(self, capacity: Mapping[str, Decimal]) -> bool:
        return all(amount <= Decimal(capacity.get(k, 0)) for k, amount in self._data.items())

    def exceeding(self, capacity: Mapping[str, Decimal]) -> list[str]:
        """Slot names whose amount here is larger than in ``capacity``."""
        return sorted(k for k, amount in self._data.items() if amount > Decimal(capacity.get(k, 0)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResourceSlot):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self == ResourceSlot(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in sorted(self._data.items()))
        return f"ResourceSlot({inner})"

    # Serialization: Decimals travel as strings so JSON never rounds them.
    def to_json(self) -> dict[str, str]:
        return {k: str(v) for k, v in sorted(self._data.items())}

    @classmethod
    def from_json(cls, data: Mapping[str, object] | None) -> "ResourceSlot":
        return cls(data or {})


def validate_request(slots: Mapping[str, Decimal]) -> ResourceSlot:
    """Check a user's resource request: known slots, positive, quantized, sane."""
    request = ResourceSlot(slots)
    for name in slots:
        if name not in KNOWN_SLOTS:
            raise InvalidRequest(f"unknown resource slot {name!r}; known: {', '.join(KNOWN_SLOTS)}")
    for name, amount in request.items():
        if amount < 0:
            raise InvalidRequest(f"resource {name} must not be negative (got {amount})")
        if amount % QUANTUM[name] != 0:
            raise InvalidRequest(f"resource {name} must be a multiple of {QUANTUM[name]} (got {amount})")
        if amount > MAX_REQUEST[name]:
            raise InvalidRequest(f"resource {name}={amount} is larger than any node could have")
    if request[CUDA_DEVICE] and request[CUDA_SHARES]:
        raise InvalidRequest("ask for either cuda.device (whole GPUs) or cuda.shares (fractions), not both")
    return request
