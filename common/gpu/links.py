"""The `nvidia-smi topo -m` link vocabulary: labels, their rank and bandwidth.

Between two GPUs a link is one of (strongest first):

    NV<n>  n bonded NVLinks (direct, or both GPUs on the same NVSwitch fabric)
    PIX    at most one PCIe bridge (same PCIe switch)
    PXB    several PCIe bridges, not through a host bridge
    PHB    through a PCIe host bridge (the CPU's root complex)
    NODE   between host bridges inside one NUMA node
    SYS    across the SMP interconnect between NUMA nodes (QPI/UPI/Infinity Fabric)

``X`` marks a GPU's own cell on the diagonal. Older drivers printed ``SOC``
for what is now ``SYS``; it is read as ``SYS``.

Rank orders labels by quality: more NVLinks > fewer NVLinks > PIX > PXB > PHB
> NODE > SYS. Bandwidth is the figure the allocator sums (GB/s, one direction):

- NVLink: n × 25 GB/s per direction, the per-link rate of NVLink 2, 3 and 4
  (V100: 6 links = 150 GB/s, A100: 12 = 300 GB/s, H100: 18 = 450 GB/s per
  direction, NVIDIA's data sheets).
- PCIe classes, for a Gen4 x16 GPU (≈32 GB/s raw, ≈24 GB/s achievable, the
  figure NCCL's topology model uses for a Gen4 x16 link): PIX 24, PXB 20 and
  PHB 16 (each extra bridge, and the root complex above all, costs P2P
  throughput in `p2pBandwidthLatencyTest` runs), NODE 12, SYS 10 (NCCL models
  a Skylake-class UPI hop at 10 GB/s). They are chosen to be strictly
  decreasing with rank, so a worse class never scores more bandwidth.
"""
from __future__ import annotations

import re

from ..errors import ConfigError

SELF = "X"
PCIE_LABELS = ("PIX", "PXB", "PHB", "NODE", "SYS")  # strongest first
NVLINK_GBPS_PER_LINK = 25
PCIE_GBPS: dict[str, int] = {"PIX": 24, "PXB": 20, "PHB": 16, "NODE": 12, "SYS": 10}
# Rank: SYS=0 … PIX=4, then NV<n> = 4 + n, so any NVLink beats any PCIe path.
_PCIE_RANK: dict[str, int] = {"SYS": 0, "NODE": 1, "PHB": 2, "PXB": 3, "PIX": 4}
_ALIASES = {"SOC": "SYS"}
_NVLINK_RE = re.compile(r"^NV(\d+)$")


def normalize_link_label(label: str) -> str:
    """Canonical spelling of a link label; raises ConfigError for unknown ones."""
    text = _ALIASES.get(label.strip().upper(), label.strip().upper())
    if text == SELF or text in _PCIE_RANK:
        return text
    match = _NVLINK_RE.match(text)
    if match and int(match.group(1)) > 0:
        return f"NV{int(match.group(1))}"
    raise ConfigError(f"unknown GPU link label {label!r} (expected X, NV<n>, PIX, PXB, PHB, NODE or SYS)")


def nvlink_count(label: str) -> int:
    """Number of NVLinks a label stands for (0 for PCIe paths)."""
    match = _NVLINK_RE.match(label)
    return int(match.group(1)) if match else 0


def nvlink_label(count: int) -> str:
    if count <= 0:
        raise ValueError(f"an NVLink label needs at least one link, got {count}")
    return f"NV{count}"


def link_rank(label: str) -> int:
    """Total order of link quality: higher is better (SYS=0, …, PIX=4, NV<n>=4+n)."""
    if label in _PCIE_RANK:
        return _PCIE_RANK[label]
    links = nvlink_count(label)
    if links:
        return len(_PCIE_RANK) - 1 + links
    raise ValueError(f"{label!r} is not a link between two GPUs")


def link_bandwidth_gbps(label: str) -> int:
    """Bandwidth figure of a link in GB/s per direction (see module docstring)."""
    if label in PCIE_GBPS:
        return PCIE_GBPS[label]
    links = nvlink_count(label)
    if links:
        return links * NVLINK_GBPS_PER_LINK
    raise ValueError(f"{label!r} is not a link between two GPUs")
