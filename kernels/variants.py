"""Recipe variants: which build of a recipe (``cpu`` or ``cuda``) suits the build host.

A recipe may list ``[variants.cpu]`` and ``[variants.cuda]`` (see ``recipe``);
``choose_variant`` picks one from what the host has (``detect_accelerator``)
unless one is asked for (``--variant``, or ``CORRAL_IMAGE_VARIANT`` in the
environment). A GPU host prefers ``cuda`` and falls back to ``cpu``; a host
without a GPU only ever picks ``cpu`` by itself.
"""
from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from corral.kernels.errors import InvalidRecipe

CPU = "cpu"
CUDA = "cuda"
ACCELERATORS = (CPU, CUDA)
VARIANT_ENV = "CORRAL_IMAGE_VARIANT"  # forces a variant for every recipe that has it
# What each kind of build host takes, best first.
_PREFERENCES = {CUDA: (CUDA, CPU), CPU: (CPU,)}
_NVML_LIBRARIES = ("libnvidia-ml.so.1", "libnvidia-ml.so")


class NoSuitableVariant(InvalidRecipe):
    """None of a recipe's variants fits the build host (e.g. a CUDA-only recipe on a host without a GPU)."""

    def __init__(self, message: str, available: Sequence[str]) -> None:
        super().__init__(message)
        self.available = tuple(available)


def choose_variant(
    recipe: str, available: Sequence[str], *, accelerator: str, requested: str | None = None
) -> str | None:
    """The variant of ``recipe`` to build: ``requested`` if given (it must exist), else the best one for
    ``accelerator``; ``None`` for a recipe without variants (asking for one is then an error)."""
    if requested:
        if not available:
            raise InvalidRecipe(f"recipe {recipe!r} has no variants; drop --variant {requested}")
        if requested not in available:
            raise InvalidRecipe(
                f"recipe {recipe!r} has no {requested!r} variant (it has: {', '.join(available)})"
            )
        return requested
    if not available:
        return None
    for candidate in _PREFERENCES.get(accelerator, (accelerator,)):
        if candidate in available:
            return candidate
    others = ", ".join(available)
    raise NoSuitableVariant(
        f"recipe {recipe!r} has no variant for a {accelerator} build host (it has: {others}); "
        f"pass --variant {available[0]} to build it anyway",
        available,
    )


def requested_variant(explicit: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """``explicit`` (the CLI's ``--variant``), else ``$CORRAL_IMAGE_VARIANT``, else None (auto)."""
    return explicit or environ.get(VARIANT_ENV, "").strip() or None


@functools.lru_cache(maxsize=1)
def detect_accelerator() -> str:
    """``cuda`` when this host has an NVIDIA GPU (``nvidia-smi -L`` lists one, or NVML reports one), else ``cpu``."""
    return CUDA if _nvidia_smi_lists_a_gpu() or _nvml_counts_a_gpu() else CPU


def _nvidia_smi_lists_a_gpu(path: str | None = None) -> bool:
    executable = shutil.which("nvidia-smi", path=path)
    if executable is None:
        return False
    try:
        result = subprocess.run(
            [executable, "-L"], capture_output=True, text=True, timeout=20, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and any(line.startswith("GPU ") for line in result.stdout.splitlines())


def _nvml_counts_a_gpu() -> bool:
    for name in _NVML_LIBRARIES:
        try:
            nvml = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            if nvml.nvmlInit_v2() != 0:
                return False
            count = ctypes.c_uint(0)
            found = nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0 and count.value > 0
            nvml.nvmlShutdown()
            return found
        except AttributeError:
            return False
    return False
