from __future__ import annotations

import pytest

from corral.common.gpu.topo_parser import load_topology_file
from corral.common.gpu.topology import GpuTopology

from .topologies import TOPOLOGY_FILES


@pytest.fixture(params=TOPOLOGY_FILES, ids=lambda path: path.stem)
def shipped_topology(request: pytest.FixtureRequest) -> GpuTopology:
    return load_topology_file(request.param)
