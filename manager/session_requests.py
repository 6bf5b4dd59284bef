"""The shape of a session creation request, validated strictly."""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from corral.common.cluster import MAX_CLUSTER_SIZE, ClusterMode
from corral.common.errors import InvalidRequest
from corral.common.resource_groups import (
    DEFAULT_PRIORITY, GROUP_NAME_RE, MAX_PRIORITY, MIN_PRIORITY, NAME_RULE, USER_MAX_PRIORITY,
)
from corral.common.slots import CPU, CUDA_DEVICE, CUDA_SHARES, MEM, ResourceSlot, parse_size, validate_request

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

KNOWN_RESOURCES = frozenset({"cpu", "mem", "cuda.device", "cuda.shares", "cuda_device", "cuda_shares"})
_WHOLE_GPUS = "'cuda.device' (a number of whole GPUs) or 'cuda.shares' (fractions)"
RESOURCE_SUGGESTIONS = {
    **dict.fromkeys(("gpu", "gpus", "cuda", "gpu_count", "num_gpus", "cuda.devices", "nvidia.com/gpu"), _WHOLE_GPUS),
    **dict.fromkeys(("gpu_share", "gpu_shares", "gpu-share", "shares", "cuda.share"), "'cuda.shares'"),
    **dict.fromkeys(("cpus", "cores", "cpu_count", "num_cpus", "vcpu", "vcpus"), "'cpu'"),
    **dict.fromkeys(("memory", "ram", "mem_bytes", "memory_bytes"), "'mem' (e.g. \"4g\")"),
}

DEFAULT_CPU = "1"
DEFAULT_MEM = "1g"


# Names a session may not take: GET /api/v1/sessions/<name> is another route.
RESERVED_NAMES = frozenset({"events"})

class ResourceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # Strict: a JSON true/false is not an amount (lax parsing would read it as 1 or 0).
    cpu: StrictStr | StrictInt | StrictFloat = DEFAULT_CPU
    mem: StrictStr | StrictInt = DEFAULT_MEM
    cuda_device: StrictInt | StrictStr | None = Field(None, alias="cuda.device")
    cuda_shares: StrictStr | StrictInt | StrictFloat | None = Field(None, alias="cuda.shares")

    @model_validator(mode="before")
    @classmethod
    def _suggest_known_names(cls, data: Any) -> Any:
        """A near-miss name (``gpu``, ``cpus``, ``memory`` …) is refused with the name meant."""
        if isinstance(data, dict):
            for key in data:
                meant = RESOURCE_SUGGESTIONS.get(str(key).strip().lower()) if key not in KNOWN_RESOURCES else None
                if meant:
                    raise PydanticCustomError(  # no context: the message is used as it is
                        "extra_forbidden",
                        f"unknown resource {key!r} (Extra inputs are not permitted): did you mean {meant}? "
                        "Resources are cpu, mem, cuda.device (whole GPUs) and cuda.shares (fractions of GPUs)",
                    )
        return data

    def to_slots(self) -> ResourceSlot:
        slots: dict[str, object] = {CPU: self.cpu, MEM: parse_size(self.mem)}
        if self.cuda_device is not None:
            slots[CUDA_DEVICE] = self.cuda_device
        if self.cuda_shares is not None:
            slots[CUDA_SHARES] = self.cuda_shares
        request = validate_request(slots)
        if request[CPU] <= 0:
            raise InvalidRequest("resource cpu must be positive")
        if request[MEM] < 16 * 2**20:
            raise InvalidRequest("resource mem must be at least 16 MiB")
        return request


class CreateSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, json_schema_extra={"pattern": NAME_RE.pattern})
    image: str | None = Field(None, json_schema_extra={"pattern": IMAGE_RE.pattern})
    type: Literal["interactive", "batch"] = "interactive"
    command: str | list[str] | None = None
    env: dict[str, str] = Field({}, json_schema_extra={"propertyNames": {"pattern": ENV_KEY_RE.pattern}})
    resources: ResourceRequest = ResourceRequest()
    mounts: list[str] = []
    cluster_size: StrictInt = Field(1, ge=1, le=MAX_CLUSTER_SIZE,
                                    description="kernels in the session: main1, sub1 … sub{N-1}")
    cluster_mode: ClusterMode = Field("single-node", description="single-node: every kernel on one node, on a "
                                      "private network of the session's own; multi-node: one kernel per node")
    resource_group: str | None = Field(None, description="where it runs; left out: the owner's default group, "
                                                         "else \"default\"", json_schema_extra={"pattern": GROUP_NAME_RE.pattern})
    project: str | None = Field(None, description="the project (name) it counts against, which the owner must be "
                                                  "a member of; left out: the owner's default project, if any")
    priority: StrictInt | None = Field(None, ge=MIN_PRIORITY, le=MAX_PRIORITY,
                                       description=f"{MIN_PRIORITY}-{MAX_PRIORITY} ({DEFAULT_PRIORITY} when left "
                                                   f"out); above {USER_MAX_PRIORITY} only for admins")

    @field_validator("resource_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and not GROUP_NAME_RE.match(value):
            raise ValueError(f"not a resource group name: must be {NAME_RULE}")
        return value

    @field_validator("project")
    @classmethod
    def _project(cls, value: str | None) -> str | None:
        if value is not None and not 1 <= len(value) <= 64:
            raise ValueError("a project name has 1-64 characters")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not NAME_RE.match(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        if value in RESERVED_NAMES:
            raise ValueError(f"{value!r} is reserved (GET /api/v1/sessions/{value} is the list's event stream)")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not IMAGE_RE.match(value):
            raise ValueError("not a valid image reference")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not ENV_KEY_RE.match(key):
                raise ValueError(f"not a valid environment variable name: {key!r}")
            if key.startswith("CORRAL_"):
                raise ValueError(f"{key}: CORRAL_* variables are set by Corral itself")
        return value

    def argv(self) -> list[str] | None:
        if self.command is None:
            return None
        if isinstance(self.command, str):
            return ["sh", "-c", self.command] if self.command.strip() else None
        return list(self.command) or None


def image_ref(image: str) -> str:
    """A bare name (no registry, path, tag or digest: ``pytorch``, ``python``) is Corral's image of that
    name, ``corral/NAME:latest`` (as its recipe tags it); anything else is used as it is (``ubuntu:24.04``,
    ``library/ubuntu``)."""
    if any(ch in image for ch in "/:@"):
        return image
    return f"corral/{image}:latest"
