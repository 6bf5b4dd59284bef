"""The ``resources`` object of a session request, from user-friendly values."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from corral.common.errors import InvalidRequest
from corral.common.slots import parse_size


def _positive_decimal(name: str, value: str | int | float | Decimal) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequest(f"{name} must be a number, not {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidRequest(f"{name} must be a positive number, not {value!r}")
    return amount


def build_resources(
    cpu: str | int | float | Decimal | None = None,
    mem: str | int | None = None,
    gpus: int | None = None,
    gpu_share: str | float | Decimal | None = None,
) -> dict[str, str | int]:
    """``cpu`` cores, ``mem`` size ("4g" or bytes), ``gpus`` whole GPUs, ``gpu_share`` fraction.

    Whole and fractional GPUs are exclusive: a session gets one kind or the other.
    Unset values are left out and the server applies its defaults.
    """
    resources: dict[str, str | int] = {}
    if cpu is not None:
        resources["cpu"] = str(_positive_decimal("cpu", cpu))
    if mem is not None:
        size = parse_size(mem)
        if size <= 0:
            raise InvalidRequest(f"mem must be positive, not {mem!r}")
        resources["mem"] = size
    if gpus is not None and gpu_share is not None:
        raise InvalidRequest("ask for whole GPUs (gpus) or a GPU share (gpu_share), not both")
    if gpus is not None:
        if int(gpus) != gpus or gpus < 0:
            raise InvalidRequest(f"gpus must be a whole number >= 0, not {gpus!r}")
        if gpus:
            resources["cuda.device"] = int(gpus)
    if gpu_share is not None:
        resources["cuda.shares"] = str(_positive_decimal("gpu_share", gpu_share))
    return resources
