"""`corral agent start --config F`."""
from __future__ import annotations

from pathlib import Path

from corral.common.process import run_service, setup_logging

from .config import load_agent_config
from .server import AgentServer


def run_agent(config_path: Path) -> None:
    setup_logging()
    server = AgentServer(load_agent_config(config_path))
    run_service(server.start, server.stop)
