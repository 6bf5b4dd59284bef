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


def test_storage_sample_loads() -> None:
    from corral.storage_proxy.config import load_storage_config

    config = load_storage_config(CONFIGS / "storage.toml")
    assert config.volumes[0].backend == "vfs" and config.manager_api.port == 6021 and config.etcd is not None
    manager = load_manager_config(CONFIGS / "manager.toml")
    assert manager.storage.default_host == f"{config.proxy_name}:{config.volumes[0].name}"
    assert manager.storage.manager_secret == config.manager_secret
    assert manager.storage.jwt_secret == config.jwt_secret
