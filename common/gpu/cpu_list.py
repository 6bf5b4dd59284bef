"""Linux CPU list syntax ("0-23,48-71"), as in sysfs and `nvidia-smi topo -m`."""
from __future__ import annotations

from typing import Iterable

from ..errors import ConfigError

_EMPTY = {"", "N/A", "NA", "-"}


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """'0-3,8,10-11' -> (0, 1, 2, 3, 8, 10, 11); 'N/A' or '' -> ()."""
    text = text.strip()
    if text.upper() in _EMPTY:
        return ()
    cores: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                low_text, high_text = part.split("-", 1)
                low, high = int(low_text), int(high_text)
                if low > high or low < 0:
                    raise ValueError
                cores.update(range(low, high + 1))
            else:
                core = int(part)
                if core < 0:
                    raise ValueError
                cores.add(core)
        except ValueError:
            raise ConfigError(f"not a CPU list: {text!r} (expected e.g. 0-23,48-71)") from None
    return tuple(sorted(cores))


def format_cpu_list(cores: Iterable[int]) -> str:
    """(0, 1, 2, 3, 8) -> '0-3,8'; () -> ''."""
    ordered = sorted(set(cores))
    ranges: list[str] = []
    start = prev = None
    for core in ordered:
        if start is None:
            start = prev = core
        elif core == prev + 1:
            prev = core
        else:
            ranges.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = prev = core
    if start is not None:
        ranges.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ",".join(ranges)
