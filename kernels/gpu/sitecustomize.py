"""Corral GPU limits for Python frameworks, applied at interpreter start.

The agent puts this directory first on ``PYTHONPATH`` (``/opt/corral/gpu``,
bind-mounted read-only) in kernels that hold a *fraction* of a GPU on a node
with ``gpu.sharing = "framework"``, so every Python interpreter in the
container imports it as ``sitecustomize`` at start-up. Stdlib only, any
Python >= 3.7, and it never imports a framework itself: importing torch or
tensorflow eagerly would cost seconds and initialise CUDA in processes that
may fork. Instead it hooks the import of each framework and applies the
limits when (and only if) the user's code imports it:

- PyTorch: ``torch.cuda.set_per_process_memory_fraction(share, device)`` for
  every visible device with a share below 1, queued with
  ``torch.cuda._lazy_call`` so it runs when CUDA initialises (immediately if
  it already has). The caching allocator then raises an out-of-memory error
  beyond share × device memory.
- JAX: ``XLA_PYTHON_CLIENT_MEM_FRACTION`` (the agent sets it in the
  environment; kept as a default here for interpreters started with a
  cleaned environment). JAX applies one fraction to every device: the
  smallest share is used.
- TensorFlow: one logical device per GPU with ``memory_limit`` = the
  device's limit in MiB, set right after ``import tensorflow`` (before the
  GPUs are initialised).

Inputs, from the agent (comma-separated, one entry per visible device, in
CUDA's order inside the container): ``CORRAL_GPU_SHARES`` (e.g. ``0.25``),
``CORRAL_GPU_MEM_LIMIT`` (bytes), ``CORRAL_GPU_SHARING`` (only ``framework``
applies limits). ``CORRAL_GPU_LIMITS_DISABLE=1`` turns the hooks off.

These are cooperative limits (a process can lift them); ``gpu.sharing =
"mps"`` enforces memory and compute in the driver instead. Afterwards the
image's own ``sitecustomize`` (if any, e.g. Debian's) is run as well, since
this module shadows it. Interpreters started with ``-S`` or ``-I`` skip
``sitecustomize`` and so get no limits.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from decimal import Decimal, InvalidOperation

MIB = 1 << 20


class GpuLimits(object):
    """What this process may use, per visible device (CUDA ordinal = position)."""

    def __init__(self, shares, mem_limits):
        self.shares = list(shares)  # Decimal per device
        self.mem_limits = list(mem_limits)  # bytes per device (None when unknown)

    @property
    def limited(self):
        return any(share < 1 for share in self.shares)

    def limited_devices(self):
        """(ordinal, share, memory limit in bytes) for each device with a share below 1."""
        return [
            (ordinal, share, self.mem_limits[ordinal] if ordinal < len(self.mem_limits) else None)
            for ordinal, share in enumerate(self.shares)
            if share < 1
        ]

    def xla_fraction(self):
        fractions = [share for share in self.shares if share < 1]
        return str(min(fractions)) if fractions else None


def limits_from_env(environ):
    """The limits the agent put in the environment; None when there is nothing to apply."""
    if environ.get("CORRAL_GPU_LIMITS_DISABLE", "") not in ("", "0"):
        return None
    if environ.get("CORRAL_GPU_SHARING", "framework") != "framework":
        return None
    shares = _decimal_list(environ.get("CORRAL_GPU_SHARES", ""))
    if not shares:
        return None
    mem_limits = [int(value) for value in _decimal_list(environ.get("CORRAL_GPU_MEM_LIMIT", ""))]
    limits = GpuLimits(shares, mem_limits)
    return limits if limits.limited else None


def _decimal_list(text):
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = Decimal(part)
        except InvalidOperation:
            _warn("ignoring malformed GPU limit %r" % part)
            return []
        if not value.is_finite() or value <= 0:
            _warn("ignoring out-of-range GPU limit %r" % part)
            return []
        values.append(value)
    return values


# Framework hooks ----------------------------------------------------------------
def apply_torch_limits(torch_cuda, limits):
    """Queue ``set_per_process_memory_fraction`` for each limited device on ``torch.cuda``.

    Runs at CUDA initialisation via ``torch.cuda._lazy_call``, so importing
    torch does not initialise CUDA; when CUDA is already up it runs now.
    """
    calls = []
    for ordinal, share, _ in limits.limited_devices():
        calls.append(_torch_fraction_call(torch_cuda, float(share), ordinal))
    lazy_call = getattr(torch_cuda, "_lazy_call", None)
    for call in calls:
        if lazy_call is not None:
            lazy_call(call)
        else:
            # Very old or unusual builds: apply at once, which initialises CUDA.
            call()


def _torch_fraction_call(torch_cuda, fraction, ordinal):
    def call():
        try:
            if ordinal >= torch_cuda.device_count():
                return
            torch_cuda.set_per_process_memory_fraction(fraction, ordinal)
        except Exception as exc:  # noqa: BLE001 - a limit must never break the user's program
            _warn("could not limit PyTorch on GPU %d to %s of its memory: %s" % (ordinal, fraction, exc))

    return call


def apply_tensorflow_limits(tf, limits):
    """One logical device per limited GPU, capped at its memory limit (MiB)."""
    try:
        gpus = tf.config.list_physical_devices("GPU")
    except Exception as exc:  # noqa: BLE001
        _warn("could not list TensorFlow GPUs: %s" % exc)
        return
    for ordinal, _share, mem_limit in limits.limited_devices():
        if mem_limit is None or ordinal >= len(gpus):
            continue
        try:
            tf.config.set_logical_device_configuration(
                gpus[ordinal], [tf.config.LogicalDeviceConfiguration(memory_limit=max(1, mem_limit // MIB))]
            )
        except Exception as exc:  # noqa: BLE001 - e.g. RuntimeError: GPUs already initialised
            _warn("could not limit TensorFlow on GPU %d: %s" % (ordinal, exc))


def apply_jax_limits(environ, limits):
    fraction = limits.xla_fraction()
    if fraction is not None:
        environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", fraction)


# Post-import hooks ----------------------------------------------------------------
class _HookedLoader(importlib.abc.Loader):
    """Runs the real loader, then the hook on the freshly executed module."""

    def __init__(self, loader, hook):
        self._loader = loader
        self._hook = hook

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        try:
            self._hook(module)
        except Exception as exc:  # noqa: BLE001
            _warn("GPU limit hook for %s failed: %s" % (module.__name__, exc))

    def __getattr__(self, name):
        return getattr(self._loader, name)


class PostImportHooks(importlib.abc.MetaPathFinder):
    """Calls ``hooks[name](module)`` once, right after module ``name`` is first imported."""

    def __init__(self, hooks):
        self.hooks = dict(hooks)

    def find_spec(self, fullname, path, target=None):
        hook = self.hooks.get(fullname)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        del self.hooks[fullname]  # once
        spec.loader = _HookedLoader(spec.loader, hook)
        return spec


def install(environ=None, meta_path=None, modules=None):
    """Apply the limits from ``environ`` to the frameworks, now or when they are imported.

    Returns the limits applied (None when there are none). The arguments
    exist for tests; at start-up they are ``os.environ``, ``sys.meta_path``
    and ``sys.modules``.
    """
    environ = os.environ if environ is None else environ
    meta_path = sys.meta_path if meta_path is None else meta_path
    modules = sys.modules if modules is None else modules
    limits = limits_from_env(environ)
    if limits is None:
        return None
    apply_jax_limits(environ, limits)
    hooks = {
        "torch.cuda": lambda module: apply_torch_limits(module, limits),
        "tensorflow": lambda module: apply_tensorflow_limits(module, limits),
    }
    for name in list(hooks):
        if name in modules:  # imported before us (only when install() is called late)
            hooks.pop(name)(modules[name])
    if hooks:
        meta_path.insert(0, PostImportHooks(hooks))
    return limits


def _chain_next_sitecustomize():
    """Run the ``sitecustomize`` this one shadows (e.g. Debian's), like site.py would."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - site.py also only reports these
        _warn("the image's sitecustomize (%s) failed: %s" % (spec.origin, exc))


def _warn(message):
    try:
        sys.stderr.write("corral sitecustomize: %s\n" % message)
    except Exception:  # noqa: BLE001 - no stderr: nothing to do
        pass


if __name__ == "sitecustomize":  # imported by site.py at start-up (not when imported by tests)
    try:
        install()
    except Exception as _exc:  # noqa: BLE001 - never stop the interpreter from starting
        _warn("GPU limits not applied: %s" % _exc)
    _chain_next_sitecustomize()
