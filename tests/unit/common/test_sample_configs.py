"""The sample configs in configs/ must load: they are documentation that runs."""
from pathlib import Path

from corral.agent.config import load_agent_config
from corral.manager.config import load_manager_config

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def test_manager_sample_loads() -> None:
    config = load_manager_config(CONFIGS / "manager.toml")
    assert config.db.url.startswith("postgresql://") and config.etcd.endpoints


def test_agent_sample_loads() -> None:
    config = load_agent_config(CONFIGS / "agent.toml")
    assert config.gpu.plugin == "cuda" and config.rpc.port == 6001
