"""The shipped topology files (configs/gpus/), for the GPU tests."""
from __future__ import annotations

from pathlib import Path

from corral.common.gpu.topo_parser import load_topology_file
from corral.common.gpu.topology import GpuTopology

TOPOLOGY_DIR = Path(__file__).resolve().parents[3] / "configs" / "gpus"
TOPOLOGY_FILES = sorted(TOPOLOGY_DIR.glob("*.toml"))


def load(name: str) -> GpuTopology:
    return load_topology_file(TOPOLOGY_DIR / name)
