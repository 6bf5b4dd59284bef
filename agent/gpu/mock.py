"""`mock` GPU plugin: the node's GPUs come from a topology file (configs/gpus/).

It yields the same `GpuTopology` as NVML discovery would, so every code path
above discovery runs on machines without a GPU.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from corral.common.gpu.topo_parser import load_topology_file
from corral.common.gpu.topology import GpuTopology

log = logging.getLogger(__name__)


class MockGpuPlugin:
    name = "mock"

    def __init__(self, topology_file: str | os.PathLike[str], *, uuid_seed: str | None = None) -> None:
        self.topology_file = Path(topology_file)
        self.uuid_seed = uuid_seed

    async def discover(self) -> GpuTopology:
        # A bad file is a configuration error and must stop the agent, not
        # silently turn into a GPU-less node, so errors propagate.
        topology = await asyncio.to_thread(load_topology_file, self.topology_file, uuid_seed=self.uuid_seed)
        log.info("mock GPUs from %s: %d device(s)", self.topology_file, topology.device_count)
        return topology
