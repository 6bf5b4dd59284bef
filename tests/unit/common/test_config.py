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


# --- env values are read by the type of the field they set ------------------

AGENT = "CORRAL_AGENT_"


def agent_config(env: dict[str, str], path: Path | None = None):  # type: ignore[no-untyped-def]
    from corral.agent.config import AgentConfig
    from corral.common.config import load_config

    return load_config(AgentConfig, path, env_prefix=AGENT, environ=env)


@pytest.mark.parametrize("raw", ["12345", "true", "null", "1e3", "[1, 2]", '{"a": 1}', '"quoted"', ""])
def test_a_str_field_keeps_the_text_as_it_is(raw: str) -> None:
    assert agent_config({f"{AGENT}MANAGER__CLUSTER_SECRET": raw}).manager.cluster_secret == raw


def test_scalar_fields_are_parsed_by_their_type(tmp_path: Path) -> None:
    config = agent_config({
        f"{AGENT}RPC__PORT": "6002",
        f"{AGENT}RESOURCES__CPU_PINNING": "true",
        f"{AGENT}MANAGER__HEARTBEAT_INTERVAL_S": "1e3",
        f"{AGENT}DATA_DIR": str(tmp_path),
        f"{AGENT}GPU__PLUGIN": "mock",
    })
    assert config.rpc.port == 6002
    assert config.resources.cpu_pinning is True
    assert config.manager.heartbeat_interval_s == 1000.0
    assert config.data_dir == tmp_path
    assert config.gpu.plugin == "mock"
    assert agent_config({f"{AGENT}RESOURCES__CPU_PINNING": "0"}).resources.cpu_pinning is False


def test_list_fields_take_json() -> None:
    config = agent_config({f"{AGENT}ETCD__ENDPOINTS": '["10.0.0.1:2379", "10.0.0.2:2379"]'})
    assert config.etcd.endpoints == ["10.0.0.1:2379", "10.0.0.2:2379"]
    with pytest.raises(ConfigError, match=r"CORRAL_AGENT_ETCD__ENDPOINTS=10.0.0.1:2379: Input should be a valid list.*JSON"):
        agent_config({f"{AGENT}ETCD__ENDPOINTS": "10.0.0.1:2379"})


def test_nested_sections_from_keys_or_one_json_value() -> None:
    config = agent_config({f"{AGENT}RPC": '{"host": "0.0.0.0", "port": 7000}', f"{AGENT}RPC__PORT": "7001"})
    assert (config.rpc.host, config.rpc.port) == ("0.0.0.0", 7001)  # the more specific variable wins
    with pytest.raises(ConfigError, match=r'CORRAL_AGENT_RPC=\{"port": "x"\}: port: Input should be a valid integer'):
        agent_config({f"{AGENT}RPC": '{"port": "x"}'})
    with pytest.raises(ConfigError, match="CORRAL_AGENT_RPC__PORT sets a key inside CORRAL_AGENT_RPC"):
        agent_config({f"{AGENT}RPC": "5", f"{AGENT}RPC__PORT": "1"})


def test_optional_fields_take_null() -> None:
    from corral.common.config import load_config
    from corral.storage_proxy.config import StorageProxyConfig

    required = {"manager_secret": "m" * 16, "jwt_secret": "j" * 16, "volumes": [{"name": "v", "path": "/tmp/v"}]}

    def storage(env: dict[str, str]) -> StorageProxyConfig:
        return load_config(StorageProxyConfig, env_prefix="CORRAL_STORAGE_", environ=env, overrides=required)

    assert storage({"CORRAL_STORAGE_ETCD": "null"}).etcd is None
    etcd = storage({"CORRAL_STORAGE_ETCD__ENDPOINTS": '["e:2379"]', "CORRAL_STORAGE_ETCD__PASSWORD": "null"}).etcd
    assert etcd is not None and etcd.endpoints == ["e:2379"]
    assert etcd.password == "null"  # a str field (even an optional one) keeps its text


def test_a_bad_env_value_names_the_variable_not_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ag.toml"
    path.write_text('[manager]\ncluster_secret = "s"\n')
    with pytest.raises(ConfigError) as err:
        agent_config({f"{AGENT}RPC__PORT": "abc"}, path)
    assert str(err.value).startswith("invalid configuration: CORRAL_AGENT_RPC__PORT=abc: Input should be a valid integer")
    assert str(path) not in str(err.value)
    with pytest.raises(ConfigError, match=r"CORRAL_AGENT_RPC__PORT=99999: Input should be less than or equal to 65535"):
        agent_config({f"{AGENT}RPC__PORT": "99999"})


def test_a_bad_file_value_names_the_file_and_mixed_errors_name_both(tmp_path: Path) -> None:
    path = tmp_path / "ag.toml"
    path.write_text("[rpc]\nport = 'zz'\n")
    with pytest.raises(ConfigError, match=rf"^invalid configuration in {path}: rpc.port: Input should be a valid integer"):
        agent_config({}, path)
    with pytest.raises(ConfigError) as err:
        agent_config({f"{AGENT}DOCKER__PIDS_LIMIT": "1"}, path)
    message = str(err.value)
    assert message.startswith("invalid configuration: CORRAL_AGENT_DOCKER__PIDS_LIMIT=1: ")
    assert f"in {path}: rpc.port: " in message


def test_secrets_in_env_errors_are_hidden() -> None:
    from corral.common.config import load_config
    from corral.storage_proxy.config import StorageProxyConfig

    with pytest.raises(ConfigError) as err:
        load_config(StorageProxyConfig, env_prefix="CORRAL_STORAGE_", environ={"CORRAL_STORAGE_MANAGER_SECRET": "tooshort"},
                    overrides={"jwt_secret": "j" * 16, "volumes": [{"name": "v", "path": "/tmp/v"}]})
    assert "CORRAL_STORAGE_MANAGER_SECRET=<hidden>: String should have at least 16 characters" in str(err.value)
    assert "tooshort" not in str(err.value)


def test_unknown_env_keys_under_the_prefix_are_errors_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="CORRAL_AGENT_RPC__PROT=1: Extra inputs are not permitted"):
        agent_config({f"{AGENT}RPC__PROT": "1"})
    with pytest.raises(ConfigError, match="CORRAL_AGENT_NOPE__X=1: Extra inputs are not permitted"):
        agent_config({f"{AGENT}NOPE__X": "1"})
    # Other CORRAL_* variables are not this component's business.
    assert agent_config({"CORRAL_AGENTX": "1", "CORRAL_MANAGER_API__PORT": "x", AGENT: "1"}).rpc.port == 6001


@pytest.mark.parametrize(
    ("annotation", "raw", "expected"),
    [
        (str, "null", "null"),
        (str | None, "null", "null"),
        (int | None, "null", None),
        (int | None, "7", "7"),  # left to pydantic, which makes it 7
        (list[str], '["a"]', ["a"]),
        (list[str] | None, "null", None),
        (list[str], "a,b", "a,b"),  # not JSON: pydantic says a list was expected
        (dict[str, int], '{"a": 1}', {"a": 1}),
        (None, "[1]", "[1]"),  # no such field: the text, for the error
    ],
)
def test_parse_env_value(annotation: object, raw: str, expected: object) -> None:
    from corral.common.config import parse_env_value

    assert parse_env_value(raw, annotation) == expected
