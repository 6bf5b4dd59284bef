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
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
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
    lines = [_ANSI_RE.sub("", line).rstrip() for line in text.lstrip("\ufeff").splitlines()]
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


def load_topology_file(
    path: str | os.PathLike[str], *, uuid_seed: str | None = None, devices_csv: str | os.PathLike[str] | None = None
) -> GpuTopology:
    """Load a mock topology: a TOML file (format in the module docstring) or raw `nvidia-smi topo -m` output.

    ``path`` may be ``TOPO[,CSV]``. For raw output, per-GPU models, memory and
    UUIDs come from ``CSV`` (``nvidia-smi --query-gpu=index,name,memory.total,uuid
    --format=csv``), from ``devices_csv``, or from a CSV found beside the file:
    ``<stem>.csv``, else ``gpus.csv`` in the same folder.
    """
    file = Path(path)
    if devices_csv is None and not file.exists() and "," in str(path):
        first, _, second = str(path).partition(",")
        file, devices_csv = Path(first), Path(second)
    text = _read_text(file, "GPU topology file")
    data: Any = None
    toml_error: tomllib.TOMLDecodeError | None = None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        toml_error = exc
    if not (isinstance(data, dict) and "topo" in data) and _looks_like_topo(text):
        return _topology_from_raw_file(file, text, uuid_seed, devices_csv)
    if toml_error is not None:
        raise ConfigError(
            f"GPU topology file {file} is neither `nvidia-smi topo -m` output (no header row "
            f"'GPU0 GPU1 … CPU Affinity' found) nor a valid TOML mock topology: {toml_error}"
        ) from None
    if devices_csv is not None:
        raise ConfigError(f"GPU topology file {file}: a device CSV goes with raw `nvidia-smi topo -m` output, "
                          "not with a TOML file (use [[device]] there)")
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


def _read_text(file: Path, what: str) -> str:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {file}: {exc.strerror or exc}") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # PowerShell's `>` writes UTF-16
        text = raw.decode("utf-16")
    else:
        text = raw.decode("utf-8", errors="replace")
    return _ANSI_RE.sub("", text.lstrip("\ufeff"))


def _looks_like_topo(text: str) -> bool:
    return any(_is_header(_ANSI_RE.sub("", line)) for line in text.splitlines())


def _topology_from_raw_file(
    file: Path, text: str, uuid_seed: str | None, devices_csv: str | os.PathLike[str] | None
) -> GpuTopology:
    csv_file = Path(devices_csv) if devices_csv is not None else companion_csv(file)
    facts = parse_gpu_csv(_read_text(csv_file, "GPU device CSV"), str(csv_file)) if csv_file is not None else {}
    try:
        topology = topology_from_topo_text(
            text,
            models={i: f["model"] for i, f in facts.items() if "model" in f},
            memories={i: f["memory"] for i, f in facts.items() if "memory" in f},
            uuids={i: f["uuid"] for i, f in facts.items() if "uuid" in f},
            pci_bus_ids={i: f["pci_bus_id"] for i, f in facts.items() if "pci_bus_id" in f},
            uuid_seed=uuid_seed or file.stem,
        )
    except ConfigError as exc:
        raise ConfigError(f"GPU topology file {file}: {exc.detail}") from None
    stray = sorted(set(facts) - {d.index for d in topology.devices})
    if stray:
        raise ConfigError(f"GPU device CSV {csv_file} lists GPUs the matrix in {file} does not have: {stray}")
    return topology


def companion_csv(file: Path) -> Path | None:
    """The `nvidia-smi --query-gpu … --format=csv` output saved beside ``file``, if any."""
    for candidate in (file.with_suffix(".csv"), file.with_name("gpus.csv")):
        if candidate != file and candidate.is_file():
            return candidate
    return None


_CSV_COLUMNS = {
    "index": "index", "name": "model", "memory.total": "memory", "uuid": "uuid",
    "pci.bus_id": "pci_bus_id", "gpu_bus_id": "pci_bus_id", "gpu_name": "model", "gpu_uuid": "uuid",
}
_DEFAULT_CSV_ORDER = ("index", "name", "memory.total", "uuid")


def parse_gpu_csv(text: str, where: str = "GPU device CSV") -> dict[int, dict[str, Any]]:
    """Per GPU index: model, memory (bytes), uuid, pci_bus_id from `nvidia-smi --query-gpu=… --format=csv`.

    The header row is optional (``noheader`` gives the default order
    index,name,memory.total,uuid); ``nounits`` memory is in MiB.
    """
    import csv

    rows = [[cell.strip() for cell in row] for row in csv.reader(text.splitlines()) if any(c.strip() for c in row)]
    if not rows:
        return {}
    header = [re.sub(r"\s*\[.*\]$", "", cell).strip().lower() for cell in rows[0]]
    if "index" in header:
        columns, body = header, rows[1:]
    else:
        columns, body = list(_DEFAULT_CSV_ORDER), rows
    if "index" not in columns:
        raise ConfigError(f"{where}: needs an index column (nvidia-smi --query-gpu=index,name,memory.total,uuid)")
    facts: dict[int, dict[str, Any]] = {}
    for number, row in enumerate(body, start=2 if body is not rows else 1):
        values = dict(zip(columns, row))
        try:
            index = int(values["index"])
        except (KeyError, ValueError):
            raise ConfigError(f"{where} line {number}: {values.get('index')!r} is not a GPU index") from None
        entry: dict[str, Any] = {}
        for column, value in values.items():
            key = _CSV_COLUMNS.get(column)
            if key is None or key == "index" or not value or value in ("N/A", "[N/A]"):
                continue
            if key == "memory":
                amount = value.replace(" ", "")
                if amount.isdigit():  # nounits: nvidia-smi reports memory.total in MiB
                    amount += "MiB"
                try:
                    entry[key] = parse_size(amount)
                except CorralError:
                    raise ConfigError(f"{where} line {number}: memory {value!r} is not a size") from None
            else:
                entry[key] = value
        facts[index] = entry
    return facts


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
