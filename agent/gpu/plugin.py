"""The one narrow interface every GPU plugin implements, and the factory by name.

A plugin only discovers: it returns the node's `GpuTopology`, or an empty one
(after logging why) when the node has no usable GPU. Allocation and
enforcement live elsewhere and see nothing but that model.
"""
from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

from corral.common.errors import ConfigError
from corral.common.gpu.topology import GpuTopology

log = logging.getLogger(__name__)

PLUGIN_NAMES = ("none", "mock", "cuda")


@runtime_checkable
class GpuPlugin(Protocol):
    name: str

    async def discover(self) -> GpuTopology:
        """The node's GPUs; an empty topology, with one log line saying why, when none."""
        ...


class NoGpuPlugin:
    """`[gpu] plugin = "none"`: the node advertises no GPUs."""

    name = "none"

    async def discover(self) -> GpuTopology:
        log.info("GPU plugin is 'none': this node advertises no GPUs")
        return GpuTopology()


def load_gpu_plugin(name: str, **options: Any) -> GpuPlugin:
    """Build the plugin called ``name`` with its options.

    - ``none``: no options.
    - ``mock``: ``topology`` (path of a topology file, required), ``uuid_seed``
      (optional; makes UUIDs differ between agents sharing one file).
    - ``cuda``: no options (``nvml`` may pass a stand-in module in tests).
    """
    if name == "none":
        _no_unknown(name, options, set())
        return NoGpuPlugin()
    if name == "mock":
        from .mock import MockGpuPlugin

        _no_unknown(name, options, {"topology", "uuid_seed"})
        topology = options.get("topology")
        if not topology:
            raise ConfigError('GPU plugin "mock" needs a topology file ([gpu] topology = "FILE")')
        return MockGpuPlugin(topology, uuid_seed=options.get("uuid_seed"))
    if name == "cuda":
        from .cuda import CudaGpuPlugin

        _no_unknown(name, options, {"nvml"})
        return CudaGpuPlugin(nvml=options.get("nvml"))
    raise ConfigError(f"unknown GPU plugin {name!r}; known: {', '.join(PLUGIN_NAMES)}")


def _no_unknown(name: str, options: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"GPU plugin {name!r} takes no option(s) {', '.join(unknown)}")
