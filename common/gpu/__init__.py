"""GPU model shared by agent and manager: topology, its file format, the pure allocator."""
from .allocator import (
    SHARE_QUANTUM,
    WholeGpuScore,
    pick_cpu_cores,
    pick_gpu_fraction,
    pick_whole_gpus,
    score_whole_gpu_set,
)
from .cpu_list import format_cpu_list, parse_cpu_list
from .links import link_bandwidth_gbps, link_rank, normalize_link_label, nvlink_count
from .node_state import GpuAllocation, GpuNodeState
from .topo_parser import load_topology_file, parse_topo_matrix, topology_from_topo_text
from .topology import GpuDevice, GpuTopology, MigDevice

__all__ = [
    "SHARE_QUANTUM",
    "GpuAllocation",
    "GpuDevice",
    "GpuNodeState",
    "GpuTopology",
    "MigDevice",
    "WholeGpuScore",
    "format_cpu_list",
    "link_bandwidth_gbps",
    "link_rank",
    "load_topology_file",
    "normalize_link_label",
    "nvlink_count",
    "parse_cpu_list",
    "parse_topo_matrix",
    "pick_cpu_cores",
    "pick_gpu_fraction",
    "pick_whole_gpus",
    "score_whole_gpu_set",
    "topology_from_topo_text",
]
