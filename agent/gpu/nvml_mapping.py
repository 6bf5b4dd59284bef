"""Pure translations from NVML's answers into the topology model.

Kept apart from the NVML calls so they can be tested with made-up values on
machines without a GPU.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from corral.common.gpu.links import SELF, nvlink_label

# nvmlGpuTopologyLevel_t -> `nvidia-smi topo -m` label. INTERNAL (two GPUs on
# one board, e.g. a K80) is shown as PIX by nvidia-smi.
COMMON_ANCESTOR_LABELS: dict[int, str] = {
    0: "PIX",  # NVML_TOPOLOGY_INTERNAL
    10: "PIX",  # NVML_TOPOLOGY_SINGLE: one PCIe switch
    20: "PXB",  # NVML_TOPOLOGY_MULTIPLE: several switches, no host bridge
    30: "PHB",  # NVML_TOPOLOGY_HOSTBRIDGE
    40: "NODE",  # NVML_TOPOLOGY_NODE (formerly _CPU)
    50: "SYS",  # NVML_TOPOLOGY_SYSTEM
}


def common_ancestor_label(level: int) -> str:
    """Label for an NVML common-ancestor level; unknown levels read as the worst, SYS."""
    return COMMON_ANCESTOR_LABELS.get(int(level), "SYS")


def cpus_from_affinity_words(words: Sequence[int], bits_per_word: int = 64) -> tuple[int, ...]:
    """nvmlDeviceGetCpuAffinity's bitmask words -> CPU cores, ascending.

    Bit b of word w is core ``w * bits_per_word + b``.
    """
    cores = []
    for position, word in enumerate(words):
        word = int(word)
        base = position * bits_per_word
        while word:
            low = word & -word
            cores.append(base + low.bit_length() - 1)
            word ^= low
    return tuple(cores)


def normalize_pci_bus_id(bus_id: str | bytes) -> str:
    """NVML's "00000000:07:00.0" -> sysfs' "0000:07:00.0" (lower case)."""
    text = bus_id.decode() if isinstance(bus_id, bytes) else str(bus_id)
    text = text.strip().lower()
    domain, _, rest = text.partition(":")
    if not rest:
        return text
    return f"{int(domain, 16):04x}:{rest}"


def nvlink_count_matrix(
    count: int,
    direct_links: Mapping[tuple[int, int], int],
    switch_links: Sequence[int],
) -> list[list[int]]:
    """NVLinks between each pair of GPUs.

    ``direct_links[(i, j)]``: links of GPU i whose far end is GPU j (NVML reports
    each link from both ends; the larger count wins should they disagree).
    ``switch_links[i]``: links of GPU i that end on an NVSwitch. All GPUs on
    the NVSwitch fabric reach each other through it; nvidia-smi shows such a
    pair as NV<links>, the links one GPU has into the fabric (NV12 on a DGX
    A100, NV18 on an H100 board) — the smaller count when they differ.
    """
    matrix = [[0] * count for _ in range(count)]
    for i in range(count):
        for j in range(count):
            if i == j:
                continue
            links = max(direct_links.get((i, j), 0), direct_links.get((j, i), 0))
            if switch_links[i] and switch_links[j]:
                links += min(switch_links[i], switch_links[j])
            matrix[i][j] = links
    return matrix


def link_label_matrix(pcie_labels: Sequence[Sequence[str]], nvlinks: Sequence[Sequence[int]]) -> tuple[tuple[str, ...], ...]:
    """Combine PCIe path labels and NVLink counts: NVLinks win where there are any."""
    count = len(pcie_labels)
    return tuple(
        tuple(
            SELF if i == j else (nvlink_label(nvlinks[i][j]) if nvlinks[i][j] > 0 else pcie_labels[i][j])
            for j in range(count)
        )
        for i in range(count)
    )
