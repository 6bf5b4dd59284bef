"""Read `nvidia-smi topo -m` text, and mock topology files built around it.

`parse_topo_matrix` takes the real command output: the header row (GPU, NIC
or ``mlx5_*`` columns, then ``CPU Affinity``, ``NUMA Affinity`` and, on newer
drivers, ``GPU NUMA ID``), one row per GPU, then NIC rows and the legend,
which are ignored. Columns may be separated by tabs or spaces.

A mock topology file is TOML::

    name = "DGX A100"             # optional; also seeds the synthetic UUIDs
    topo = '''
            GPU0    GPU1    CPU Affinity    NUMA Affinity
    GPU0     X      NV12    0-15            0
    GPU1    NV12     X      0-15            0
    '''

    [defaults]                    # optional, applies to every GPU
    model = "NVIDIA A100-SXM4-80GB"
    memory = "80GiB"              # bytes as an integer, or a size string

    [[device]]                    # optional per-GPU overrides
    index = 1
    uuid = "GPU-…"
    model = "…"
    memory = 85899345920
    pci_bus_id = "00000000:0F:00.0"

Anything not given gets a default: model "NVIDIA Mock GPU", 16 GiB, and a
UUID derived from the file's name and the GPU index, so it is stable across
restarts (``GPU-`` plus a UUID-shaped hash).
"""
from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, CorralError
from ..slots import parse_size
from .cpu_list import parse_cpu_list
from .topology import GpuDevice, GpuTopology

DEFAULT_MOCK_MODEL = "NVIDIA Mock GPU"
DEFAULT_MOCK_MEMORY = 16 * 2**30

_GPU_NAME_RE = re.compile(r"^GPU(\d+)$")
_TRAILING_COLUMNS = ("CPU Affinity", "NUMA Affinity", "GPU NUMA ID")


@dataclass(frozen=True)
class TopoRow:
    """One GPU row of `nvidia-smi topo -m`."""

    index: int
    links: tuple[str, ...]  # to every GPU column, in column order
    cpu_affinity: tuple[int, ...]
    numa_affinity: int | None


def parse_topo_matrix(text: str) -> list[TopoRow]:
    """The GPU rows of `nvidia-smi topo -m` output, ordered by GPU index."""
    lines = [line.rstrip() for line in text.splitlines()]
    header_at = next((i for i, line in enumerate(lines) if _is_header(line)), None)
    if header_at is None:
        raise ConfigError("no `nvidia-smi topo -m` header row (GPU0 GPU1 … CPU Affinity) found")
    header = lines[header_at]
    device_columns, trailing = _split_header(header)
    gpu_columns = [i for i, name in enumerate(device_columns) if _GPU_NAME_RE.match(name)]
    rows: list[TopoRow] = []
    for line in lines[header_at + 1:]:
        stripped = line.strip()
        if stripped.lower().startswith("legend"):
            break
        tokens = stripped.split()
        if not tokens or not _GPU_NAME_RE.match(tokens[0]):
            continue  # NIC rows, blank lines
        expected = 1 + len(device_columns)
        if len(tokens) < expected:
            raise ConfigError(f"topology row {tokens[0]} has {len(tokens) - 1} link cells, expected {len(device_columns)}")
        cells = tokens[1:expected]
        extra = tokens[expected:]
        values = dict(zip(trailing, extra))
        rows.append(
            TopoRow(
                index=int(_GPU_NAME_RE.match(tokens[0]).group(1)),  # type: ignore[union-attr]
                links=tuple(cells[i] for i in gpu_columns),
                cpu_affinity=parse_cpu_list(values.get("CPU Affinity", "N/A")),
                numa_affinity=_parse_numa(values.get("NUMA Affinity", "N/A")),
            )
        )
    if not rows:
        raise ConfigError("`nvidia-smi topo -m` text has no GPU rows")
    column_indexes = [int(_GPU_NAME_RE.match(device_columns[i]).group(1)) for i in gpu_columns]  # type: ignore[union-attr]
    row_indexes = [row.index for row in rows]
    if sorted(row_indexes) != column_indexes or column_indexes != list(range(len(column_indexes))):
        raise ConfigError(f"GPU rows {row_indexes} do not match GPU columns {column_indexes}")
    return sorted(rows, key=lambda row: row.index)


def topology_from_topo_text(
    text: str,
    *,
    models: Mapping[int, str] | None = None,
    memories: Mapping[int, int] | None = None,
    uuids: Mapping[int, str] | None = None,
    pci_bus_ids: Mapping[int, str] | None = None,
    default_model: str = DEFAULT_MOCK_MODEL,
    default_memory: int = DEFAULT_MOCK_MEMORY,
    uuid_seed: str = "corral-mock",
) -> GpuTopology:
    """Build a `GpuTopology` from `nvidia-smi topo -m` text plus per-GPU facts."""
    rows = parse_topo_matrix(text)
    numa_nodes = _numa_nodes(rows)
    devices = tuple(
        GpuDevice(
            index=row.index,
            uuid=(uuids or {}).get(row.index) or synthetic_gpu_uuid(uuid_seed, row.index),
            model=(models or {}).get(row.index, default_model),
            memory=(memories or {}).get(row.index, default_memory),
            numa_node=numa_nodes[row.index],
            cpu_affinity=row.cpu_affinity,
            pci_bus_id=(pci_bus_ids or {}).get(row.index, ""),
        )
        for row in rows
    )
    return GpuTopology(devices=devices, links=tuple(row.links for row in rows))


def load_topology_file(path: str | os.PathLike[str], *, uuid_seed: str | None = None) -> GpuTopology:
    """Load a mock topology file (format in the module docstring)."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read GPU topology file {file}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"GPU topology file {file} is not valid TOML: {exc}") from None
    try:
        return topology_from_mock_document(data, uuid_seed=uuid_seed or str(data.get("name") or file.stem))
    except ConfigError as exc:
        raise ConfigError(f"GPU topology file {file}: {exc.detail}") from None


def topology_from_mock_document(data: Mapping[str, Any], *, uuid_seed: str = "corral-mock") -> GpuTopology:
    """Same as `load_topology_file`, for an already parsed TOML document."""
    unknown = set(data) - {"name", "description", "source", "topo", "defaults", "device"}
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)}")
    topo = data.get("topo")
    if not isinstance(topo, str):
        raise ConfigError("`topo` must hold the `nvidia-smi topo -m` output as a string")
    defaults = data.get("defaults", {})
    _check_keys(defaults, {"model", "memory"}, "[defaults]")
    models: dict[int, str] = {}
    memories: dict[int, int] = {}
    uuids: dict[int, str] = {}
    bus_ids: dict[int, str] = {}
    for entry in data.get("device", ()):
        _check_keys(entry, {"index", "uuid", "model", "memory", "pci_bus_id"}, "[[device]]")
        if "index" not in entry:
            raise ConfigError("every [[device]] needs an `index`")
        index = int(entry["index"])
        if "model" in entry:
            models[index] = str(entry["model"])
        if "memory" in entry:
            memories[index] = _memory(entry["memory"])
        if "uuid" in entry:
            uuids[index] = str(entry["uuid"])
        if "pci_bus_id" in entry:
            bus_ids[index] = str(entry["pci_bus_id"])
    topology = topology_from_topo_text(
        topo,
        models=models,
        memories=memories,
        uuids=uuids,
        pci_bus_ids=bus_ids,
        default_model=str(defaults.get("model", DEFAULT_MOCK_MODEL)),
        default_memory=_memory(defaults.get("memory", DEFAULT_MOCK_MEMORY)),
        uuid_seed=uuid_seed,
    )
    known = {d.index for d in topology.devices}
    stray = sorted((set(models) | set(memories) | set(uuids) | set(bus_ids)) - known)
    if stray:
        raise ConfigError(f"[[device]] entries for GPUs the matrix does not have: {stray}")
    return topology


def synthetic_gpu_uuid(seed: str, index: int) -> str:
    digest = hashlib.sha256(f"{seed}\0{index}".encode()).hexdigest()
    return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


# Helpers -----------------------------------------------------------------
def _is_header(line: str) -> bool:
    # The GPU0 row starts with "GPU0" too, but its next cell is its own "X".
    tokens = line.split()
    return bool(tokens) and tokens[0] == "GPU0" and (len(tokens) == 1 or tokens[1] != "X")


def _split_header(header: str) -> tuple[list[str], list[str]]:
    """Device column names, and which of the multi-word trailing columns follow."""
    cut = len(header)
    for name in _TRAILING_COLUMNS:
        position = header.find(name)
        if position >= 0:
            cut = min(cut, position)
    device_columns = header[:cut].split()
    rest = header[cut:]
    trailing = sorted((name for name in _TRAILING_COLUMNS if name in rest), key=rest.find)
    return device_columns, trailing


def _parse_numa(text: str) -> int | None:
    # A GPU may name a range ("0-1") on some boards; the first node is its home.
    cores = parse_cpu_list(text)
    return cores[0] if cores else None


def _numa_nodes(rows: list[TopoRow]) -> dict[int, int | None]:
    """NUMA node per GPU; derived from CPU affinity when the column is absent.

    Drivers before ~450 print no ``NUMA Affinity`` column. Then GPUs with the
    same CPU affinity share a node, numbered by their lowest core, which is
    how Linux numbers nodes on every dual-socket server we know of.
    """
    if any(row.numa_affinity is not None for row in rows):
        return {row.index: row.numa_affinity for row in rows}
    groups = sorted({row.cpu_affinity for row in rows if row.cpu_affinity}, key=lambda cores: cores[0])
    node_of_group = {group: node for node, group in enumerate(groups)}
    return {row.index: node_of_group.get(row.cpu_affinity) for row in rows}


def _memory(value: object) -> int:
    try:
        return parse_size(value if isinstance(value, int) else str(value))
    except CorralError as exc:
        raise ConfigError(exc.detail) from None


def _check_keys(table: object, allowed: set[str], where: str) -> None:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"unknown keys in {where}: {sorted(unknown)}")
