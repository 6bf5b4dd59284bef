"""What this node offers: CPU cores (with NUMA nodes), memory and GPUs."""
from __future__ import annotations

import os
from pathlib import Path

from corral.common.node_resources import NodeCapacity
from corral.common.slots import parse_size

from .config import ResourcesConfig


def host_memory() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("cannot read MemTotal from /proc/meminfo")


def host_numa_of_core() -> dict[int, int]:
    mapping: dict[int, int] = {}
    for node_dir in sorted(Path("/sys/devices/system/node").glob("node[0-9]*")):
        node = int(node_dir.name[4:])
        for cpu_dir in node_dir.glob("cpu[0-9]*"):
            mapping[int(cpu_dir.name[3:])] = node
    return mapping


def detect_capacity(config: ResourcesConfig, gpu_topology: dict | None = None,
                    mock_cores: dict[int, int] | None = None) -> NodeCapacity:
    """Cores: the mock GPU topology's cores when given, else the host's (or the configured count)."""
    if mock_cores:
        numa = dict(mock_cores)
        cores = tuple(sorted(numa))
    else:
        usable = sorted(os.sched_getaffinity(0))
        count = config.cpu_count or len(usable)
        host_numa = host_numa_of_core()
        cores = tuple(range(count)) if config.cpu_count else tuple(usable)
        numa = {c: host_numa.get(c, 0) for c in cores}
    if config.mem:
        mem = parse_size(config.mem)
    else:
        mem = max(host_memory() - parse_size(config.reserved_mem), 256 * 2**20)
    return NodeCapacity(cpu_cores=cores, mem=mem, numa_of_core=numa, gpu_topology=gpu_topology)
