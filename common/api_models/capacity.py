"""What a resource group can give right now: per alive node, free CPU, memory and GPUs (GET /capacity)."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import OPTIONAL_KEY, ApiModel


class CapacityGpu(ApiModel):
    """One GPU of a node: ``free_share`` 1 = fully free, 0 = fully taken; ``memory`` in bytes."""

    index: int = 0
    model: str = ""
    memory: int = 0
    free_share: str = "0"


class CapacityNode(ApiModel):
    """One alive agent of the group. CPU amounts are cores (decimal strings), memory bytes; ``gpus_free``
    counts the fully free GPUs (what a whole-GPU request can get) and ``max_free_share`` is the largest
    free share of one device (what a share of at most 1 can get). ``address`` only for admins."""

    id: str = ""
    address: Annotated[str, OPTIONAL_KEY] = ""
    cpu_total: str = "0"
    cpu_free: str = "0"
    mem_total: int = 0
    mem_free: int = 0
    gpus_total: int = 0
    gpus_free: int = 0
    max_free_share: str = "0"
    gpus: list[CapacityGpu] = []


class Capacity(ApiModel):
    """The alive agents of a resource group and what is free on them now (agents of other groups are
    left out); the two ``max_`` figures are the largest of any one node."""

    resource_group: str = "default"
    nodes: list[CapacityNode] = []
    max_free_gpus: int = Field(0, description="the most fully free GPUs on one node of the group")
    max_free_share: str = Field("0", description="the largest free share of one GPU in the group")
