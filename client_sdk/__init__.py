"""Corral's Python SDK and the ``corral`` CLI.

    from corral.client import CorralClient          # blocking, for scripts/notebooks
    from corral.client import AsyncCorralClient     # asyncio

Both read the endpoint and keypair from ``~/.config/corral/client.toml`` (or
``$CORRAL_CONFIG``) and ``CORRAL_ENDPOINT`` / ``CORRAL_ACCESS_KEY`` /
``CORRAL_SECRET_KEY``. Names are imported on first use so that
``import corral.client.config`` stays cheap.
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
}

__all__ = [
    "Agent",
    "AsyncCorralClient",
    "ClientConfig",
    "CorralClient",
    "ExecutionResult",
    "Image",
    "Kernel",
    "Project",
    "ProjectMember",
    "Session",
    "SessionFailed",
    "SessionPage",
    "StatusChange",
    "StorageClient",
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
    from .errors import SessionFailed, WaitTimeout
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
    return getattr(import_module(module, __name__), name)
