"""`corral manager start --config F`."""
from __future__ import annotations

from pathlib import Path

from corral.common.process import run_service, setup_logging

from .config import load_manager_config
from .server import ManagerServer


def run_manager(config_path: Path) -> None:
    setup_logging()
    server = ManagerServer(load_manager_config(config_path))
    run_service(server.start, server.stop)
