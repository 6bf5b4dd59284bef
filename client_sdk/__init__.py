"""Corral's Python SDK and the ``corral`` CLI.

    from corral.client import CorralClient          # blocking, for scripts/notebooks
    from corral.client import AsyncCorralClient     # asyncio

Both read the endpoint and keypair from ``~/.config/corral/client.toml`` (or
``$CORRAL_CONFIG``) and ``CORRAL_ENDPOINT`` / ``CORRAL_ACCESS_KEY`` /
``CORRAL_SECRET_KEY``. Names are imported on first use so that
``import corral.client.config`` stays cheap.

Every error the SDK raises is a ``CorralError``; the subclasses say what went
wrong (``NotFound``, ``PermissionDenied``, ``WaitTimeout`` …), all importable
from here: ``from corral.client import CorralError, NotFound``.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AsyncCorralClient": ".api",
    "ExecutionResult": ".api",
    "CorralClient": ".sync",
    "ClientConfig": ".config",
    "load_client_config": ".config",
    "write_client_config": ".config",
    "build_resources": ".resources",
    "Agent": ".models",
    "Image": ".models",
    "Kernel": ".models",
    "Project": ".models",
    "ProjectMember": ".models",
    "Session": ".models",
    "SessionPage": ".models",
    "StatusChange": ".models",
    "WhoAmI": ".models",
    "Vfolder": ".models",
    "VfolderToken": ".models",
    "StorageClient": ".storage",
    "SessionFailed": ".errors",
    "WaitTimeout": ".errors",
    "ExecutionStreamBroken": ".errors",
    # The shared error classes (what a failed request is raised as).
    **dict.fromkeys(
        (
            "CorralError", "ConfigError", "InvalidRequest", "AuthenticationFailed", "PermissionDenied", "NotFound",
            "Conflict", "UnsatisfiableRequest", "QuotaExceeded", "ServiceUnavailable", "BackendError",
            "SessionServiceFailed",
        ),
        "corral.common.errors",
    ),
}

__all__ = [
    "Agent",
    "AsyncCorralClient",
    "AuthenticationFailed",
    "BackendError",
    "ClientConfig",
    "ConfigError",
    "Conflict",
    "CorralClient",
    "CorralError",
    "ExecutionResult",
    "ExecutionStreamBroken",
    "Image",
    "InvalidRequest",
    "Kernel",
    "NotFound",
    "PermissionDenied",
    "Project",
    "ProjectMember",
    "QuotaExceeded",
    "ServiceUnavailable",
    "Session",
    "SessionFailed",
    "SessionPage",
    "SessionServiceFailed",
    "StatusChange",
    "StorageClient",
    "UnsatisfiableRequest",
    "Vfolder",
    "VfolderToken",
    "WaitTimeout",
    "WhoAmI",
    "build_resources",
    "load_client_config",
    "write_client_config",
]

if TYPE_CHECKING:
    from .api import AsyncCorralClient, ExecutionResult
    from .config import ClientConfig, load_client_config, write_client_config
    from corral.common.errors import (
        AuthenticationFailed, BackendError, ConfigError, Conflict, CorralError, InvalidRequest, NotFound,
        PermissionDenied, QuotaExceeded, ServiceUnavailable, SessionServiceFailed, UnsatisfiableRequest,
    )

    from .errors import ExecutionStreamBroken, SessionFailed, WaitTimeout
    from .models import (
        Agent, Image, Kernel, Project, ProjectMember, Session, SessionPage, StatusChange, Vfolder, VfolderToken,
        WhoAmI,
    )
    from .storage import StorageClient
    from .resources import build_resources
    from .sync import CorralClient


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, None if module.startswith("corral.") else __name__), name)
