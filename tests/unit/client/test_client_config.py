"""Client config: file < env < --endpoint, default paths, writing with mode 0600."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from corral.client.config import (
    ClientConfig,
    default_config_path,
    load_client_config,
    write_client_config,
)
from corral.common.errors import ConfigError


def test_written_config_round_trips_with_owner_only_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "client.toml"
    written = write_client_config(path, ClientConfig("http://h:1", "AK", 'se"cr\\et'))
    assert written == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_client_config(path, environ={})
    assert loaded == ClientConfig("http://h:1", "AK", 'se"cr\\et')


def test_env_overrides_file_and_flag_overrides_env(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    write_client_config(path, ClientConfig("http://file:1", "AK_FILE", "SK_FILE"))
    env = {"CORRAL_ENDPOINT": "http://env:2", "CORRAL_SECRET_KEY": "SK_ENV"}
    cfg = load_client_config(path, environ=env)
    assert (cfg.endpoint, cfg.access_key, cfg.secret_key) == ("http://env:2", "AK_FILE", "SK_ENV")
    assert cfg.origin["endpoint"] == "env CORRAL_ENDPOINT"
    assert cfg.origin["access_key"].startswith("file ")
    cfg = load_client_config(path, endpoint="flag:3", environ=env)
    assert cfg.endpoint == "http://flag:3"
    assert cfg.origin["endpoint"] == "--endpoint"


def test_default_path_honours_corral_config_then_xdg(tmp_path: Path) -> None:
    assert default_config_path({"CORRAL_CONFIG": str(tmp_path / "x.toml")}) == tmp_path / "x.toml"
    assert default_config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "corral" / "client.toml"
    assert default_config_path({}) == Path.home() / ".config" / "corral" / "client.toml"


def test_xdg_config_file_is_found(tmp_path: Path) -> None:
    write_client_config(tmp_path / "corral" / "client.toml", ClientConfig("http://xdg:9", "A", "S"))
    assert load_client_config(environ={"XDG_CONFIG_HOME": str(tmp_path)}).endpoint == "http://xdg:9"


def test_missing_config_names_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_client_config(tmp_path / "absent.toml", environ={"CORRAL_ENDPOINT": "http://h"})
    message = str(info.value)
    assert "CORRAL_ACCESS_KEY" in message and "CORRAL_SECRET_KEY" in message
    assert "CORRAL_ENDPOINT" not in message.split(":")[0]
    assert "corral up" in message
    # Health checks need no keys.
    assert load_client_config(tmp_path / "absent.toml", environ={"CORRAL_ENDPOINT": "h"}, require_credentials=False)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    path.write_text("endpoint = [unclosed\n")
    with pytest.raises(ConfigError, match="invalid client config"):
        load_client_config(path, environ={})
    path.write_text("endpoint = 5\n")
    with pytest.raises(ConfigError, match="must be a string"):
        load_client_config(path, environ={})


def test_endpoint_scheme_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="http"):
        load_client_config(tmp_path / "a.toml", environ={"CORRAL_ENDPOINT": "ftp://x", "CORRAL_ACCESS_KEY": "a",
                                                         "CORRAL_SECRET_KEY": "b"})
