"""Accelerator discovery plugins: `none`, `mock` (topology file) and `cuda` (NVML)."""
from .plugin import GpuPlugin, load_gpu_plugin

__all__ = ["GpuPlugin", "load_gpu_plugin"]
