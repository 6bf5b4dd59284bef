"""kernels/gpu/sitecustomize.py: limits from env, lazy framework hooks, start-up in a real interpreter."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest

from corral.kernels.gpu import sitecustomize as site_gpu

SITE_DIR = Path(site_gpu.__file__).resolve().parent
LIMIT_ENV = {"CORRAL_GPU_SHARES": "0.25", "CORRAL_GPU_MEM_LIMIT": str(4 * 2**30), "CORRAL_GPU_SHARING": "framework"}


class FakeTorchCuda(types.ModuleType):
    """Just what the hook touches: _lazy_call, device_count, set_per_process_memory_fraction."""

    def __init__(self, devices: int = 1, initialized: bool = False) -> None:
        super().__init__("torch.cuda")
        self.devices = devices
        self.queued: list[Callable[[], None]] = []
        self.fractions: list[tuple[float, int]] = []
        self.initialized = initialized

    def _lazy_call(self, call: Callable[[], None]) -> None:
        if self.initialized:
            call()
        else:
            self.queued.append(call)

    def init(self) -> None:  # what torch.cuda._lazy_init does with the queue
        self.initialized = True
        for call in self.queued:
            call()

    def device_count(self) -> int:
        return self.devices

    def set_per_process_memory_fraction(self, fraction: float, device: int) -> None:
        self.fractions.append((fraction, device))


def test_limits_from_env() -> None:
    limits = site_gpu.limits_from_env(dict(LIMIT_ENV))
    assert limits is not None
    assert limits.shares == [Decimal("0.25")] and limits.mem_limits == [4 * 2**30]
    assert limits.limited_devices() == [(0, Decimal("0.25"), 4 * 2**30)]
    assert limits.xla_fraction() == "0.25"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"CORRAL_GPU_SHARES": "1,1", "CORRAL_GPU_SHARING": "exclusive"},
        {"CORRAL_GPU_SHARES": "1,1"},  # whole GPUs: nothing to limit
        {**LIMIT_ENV, "CORRAL_GPU_SHARING": "mps"},
        {**LIMIT_ENV, "CORRAL_GPU_LIMITS_DISABLE": "1"},
        {**LIMIT_ENV, "CORRAL_GPU_SHARES": "lots"},
        {**LIMIT_ENV, "CORRAL_GPU_SHARES": "-0.5"},
    ],
)
def test_no_limits_when_there_is_nothing_to_apply(env: dict[str, str]) -> None:
    assert site_gpu.limits_from_env(env) is None


def test_torch_fraction_is_queued_until_cuda_initialises() -> None:
    cuda = FakeTorchCuda(devices=2)
    limits = site_gpu.GpuLimits([Decimal(1), Decimal("0.5")], [80, 40])
    site_gpu.apply_torch_limits(cuda, limits)
    assert cuda.fractions == []  # importing torch did not initialise CUDA
    cuda.init()
    assert cuda.fractions == [(0.5, 1)]  # only the fractional device


def test_torch_fraction_applies_at_once_when_cuda_is_up() -> None:
    cuda = FakeTorchCuda(initialized=True)
    site_gpu.apply_torch_limits(cuda, site_gpu.limits_from_env(dict(LIMIT_ENV)))
    assert cuda.fractions == [(0.25, 0)]


def test_torch_errors_are_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    cuda = FakeTorchCuda(initialized=True)

    def broken(fraction: float, device: int) -> None:
        raise RuntimeError("CUDA error: no device")

    cuda.set_per_process_memory_fraction = broken  # type: ignore[method-assign]
    site_gpu.apply_torch_limits(cuda, site_gpu.limits_from_env(dict(LIMIT_ENV)))
    assert "could not limit PyTorch" in capsys.readouterr().err


def test_tensorflow_gets_a_logical_device_with_the_memory_limit() -> None:
    calls: list[tuple[Any, list[Any]]] = []

    class LogicalDeviceConfiguration:
        def __init__(self, memory_limit: int) -> None:
            self.memory_limit = memory_limit

    config = types.SimpleNamespace(
        list_physical_devices=lambda kind: ["gpu0"] if kind == "GPU" else [],
        set_logical_device_configuration=lambda device, configs: calls.append((device, configs)),
        LogicalDeviceConfiguration=LogicalDeviceConfiguration,
    )
    site_gpu.apply_tensorflow_limits(types.SimpleNamespace(config=config), site_gpu.limits_from_env(dict(LIMIT_ENV)))
    assert [(device, [c.memory_limit for c in configs]) for device, configs in calls] == [("gpu0", [4096])]


def test_install_sets_jax_fraction_and_hooks_frameworks_without_importing_them() -> None:
    env = dict(LIMIT_ENV)
    meta_path: list[Any] = []
    limits = site_gpu.install(env, meta_path=meta_path, modules={})
    assert limits is not None
    assert env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.25"
    assert len(meta_path) == 1 and set(meta_path[0].hooks) == {"torch.cuda", "tensorflow"}


def test_install_applies_at_once_to_frameworks_already_imported() -> None:
    cuda = FakeTorchCuda(initialized=True)
    meta_path: list[Any] = []
    site_gpu.install(dict(LIMIT_ENV), meta_path=meta_path, modules={"torch.cuda": cuda})
    assert cuda.fractions == [(0.25, 0)]
    assert set(meta_path[0].hooks) == {"tensorflow"}


def test_install_does_nothing_without_limits() -> None:
    meta_path: list[Any] = []
    assert site_gpu.install({}, meta_path=meta_path, modules={}) is None
    assert meta_path == []


# A real interpreter start: PYTHONPATH as the agent sets it, a fake torch on disk ----------------
FAKE_TORCH = {
    "torch/__init__.py": "from torch import cuda as cuda\n",
    "torch/cuda/__init__.py": textwrap.dedent(
        """
        _queued = []
        _up = False
        calls = []
        def _lazy_call(fn):
            (fn() if _up else _queued.append(fn))
        def _lazy_init():
            global _up
            _up = True
            for fn in _queued:
                fn()
        def device_count():
            return 1
        def set_per_process_memory_fraction(fraction, device):
            calls.append((fraction, device))
        """
    ),
}


def run_python(tmp_path: Path, code: str, env: dict[str, str]) -> dict[str, Any]:
    for name, text in FAKE_TORCH.items():
        path = tmp_path / "lib" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CORRAL_", "XLA_", "PYTHON"))}
    full_env.update(env)
    full_env["PYTHONPATH"] = f"{SITE_DIR}:{tmp_path / 'lib'}"
    done = subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


CHECK = textwrap.dedent(
    """
    import json, os, sys
    site = sys.modules.get("sitecustomize")
    before = "torch" in sys.modules
    import torch
    queued = len(torch.cuda._queued)
    torch.cuda._lazy_init()
    print(json.dumps({
        "site": getattr(site, "__file__", None), "torch_before": before, "queued": queued,
        "calls": torch.cuda.calls, "xla": os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION"),
    }))
    """
)


def test_interpreter_start_applies_the_torch_fraction_lazily(tmp_path: Path) -> None:
    seen = run_python(tmp_path, CHECK, LIMIT_ENV)
    assert seen["site"] == str(SITE_DIR / "sitecustomize.py")
    assert seen["torch_before"] is False  # torch was not imported by sitecustomize
    assert seen["queued"] == 1  # queued on import, not applied yet
    assert seen["calls"] == [[0.25, 0]]  # applied when CUDA initialised
    assert seen["xla"] == "0.25"


def test_interpreter_start_without_limits_touches_nothing(tmp_path: Path) -> None:
    seen = run_python(tmp_path, CHECK, {"CORRAL_GPU_SHARES": "1", "CORRAL_GPU_SHARING": "exclusive"})
    assert seen["queued"] == 0 and seen["calls"] == [] and seen["xla"] is None


def test_the_shadowed_sitecustomize_still_runs(tmp_path: Path) -> None:
    image_site = tmp_path / "image-site"
    image_site.mkdir()
    (image_site / "sitecustomize.py").write_text("import os\nos.environ['IMAGE_SITE_RAN'] = '1'\n")
    code = "import json, os; print(json.dumps({'ran': os.environ.get('IMAGE_SITE_RAN')}))"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORRAL_", "PYTHON"))}
    env.update(LIMIT_ENV, PYTHONPATH=f"{SITE_DIR}:{image_site}")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ran"] == "1"
