"""The manager itself, the caller, agents and images."""
from __future__ import annotations

from typing import Annotated

from typing_extensions import TypedDict

from .base import ApiModel, Timestamp, one_of


class Health(ApiModel):
    status: str = ""
    version: str = ""
    manager_id: str = ""


class WhoAmI(ApiModel):
    user_id: str = ""
    username: str = ""
    access_key: str = ""
    role: Annotated[str, one_of("user", "admin")] = ""


class MigDevice(TypedDict):
    index: int
    uuid: str
    name: str
    memory: int
    gpu_instance_id: int | None
    compute_instance_id: int | None


class AgentGpu(TypedDict):
    """One GPU of an agent; ``free_share`` 1 = fully free, null when unknown; ``memory`` in bytes."""

    index: int
    uuid: str
    model: str
    memory: int
    numa_node: int | None
    cpu_affinity: str
    pci_bus_id: str
    free_share: str | None
    mig: list[MigDevice]


class Agent(ApiModel):
    """An agent; ``gpu_links`` is the `nvidia-smi topo -m` matrix between its GPUs (row/column = index)."""

    id: str = ""
    status: Annotated[str, one_of("ALIVE", "LOST", "TERMINATED")] = ""
    status_reason: str = ""
    address: str = ""
    resource_group: str = "default"
    available_slots: dict[str, str] = {}
    occupied_slots: dict[str, str] = {}
    cpu_cores: list[int] = []
    gpus: list[AgentGpu] = []
    gpu_links: list[list[str]] = []
    images: list[str] = []
    first_contact: Timestamp | None = None
    last_heartbeat: Timestamp | None = None
    version: str = ""


class AgentList(ApiModel):
    items: list[Agent] = []


class Image(ApiModel):
    """An image on alive agents, merged by name."""

    name: str = ""
    image_id: str = ""
    size: int | None = None
    labels: dict[str, str] = {}
    agents: list[str] = []
    # What it contains, from the labels its build stamped (None/[] for an image built otherwise).
    python: str | None = None
    frameworks: list[str] = []
    services: list[str] = []


class ImageList(ApiModel):
    items: list[Image] = []
