from pathlib import Path

import pytest

from corral.common.errors import ConfigError
from corral.manager.config import load_manager_config


def test_precedence_defaults_file_env_overrides(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('id = "from-file"\n[api]\nport = 9000\n[agents]\ncluster_secret = "file"\n')
    env = {"CORRAL_MANAGER_API__PORT": "9100", "CORRAL_MANAGER_AGENTS__CLUSTER_SECRET": "env"}
    from corral.common.config import load_config
    from corral.manager.config import ManagerConfig

    config = load_config(ManagerConfig, path, env_prefix="CORRAL_MANAGER_", environ=env, overrides={"id": "explicit"})
    assert (config.id, config.api.port, config.agents.cluster_secret) == ("explicit", 9100, "env")
    assert config.db.url == "sqlite:///corral.db"


def test_unknown_keys_and_bad_values_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text("[api]\nprot = 1\n")
    with pytest.raises(ConfigError, match="api.prot"):
        load_manager_config(path)
    path.write_text("[api]\nport = 99999\n")
    with pytest.raises(ConfigError, match="api.port"):
        load_manager_config(path)
    path.write_text("[api\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_manager_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_manager_config(tmp_path / "missing.toml")
