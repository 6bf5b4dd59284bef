"""[sessions] share_pip_config: the node's pip configuration and CA bundle in session containers."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from corral.agent.backend.container_config import (
    CONTAINER_CA_BUNDLE, CONTAINER_PIP_CONFIG, build_container_config, pip_config_mounts,
)
from corral.agent.config import AgentConfig, load_agent_config
from corral.agent.kernel_spec import KernelSpec
from corral.common.node_resources import Allocation


def _config(tmp_path: Path, **sessions: Any) -> AgentConfig:
    return AgentConfig(data_dir=tmp_path / "agent", sessions=sessions)


def _node(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A fake node: a global pip.conf, the agent user's ~/.config/pip/pip.conf and a CA bundle."""
    global_conf = tmp_path / "etc" / "pip.conf"
    user_conf = tmp_path / "home" / ".config" / "pip" / "pip.conf"
    bundle = tmp_path / "certs" / "ca.crt"
    for path, text in ((global_conf, "[global]\ntimeout = 60\n"), (user_conf, "[global]\nindex-url = x\n"),
                       (bundle, "-----BEGIN CERTIFICATE-----\n")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return global_conf, user_conf, bundle


def test_nothing_is_shared_by_default(tmp_path: Path) -> None:
    global_conf, _, bundle = _node(tmp_path)
    config = _config(tmp_path)
    assert config.sessions.share_pip_config is False
    assert pip_config_mounts(config, {"HOME": str(tmp_path / "home"), "PIP_CERT": str(bundle)},
                             global_files=(str(global_conf),)) == ([], {})


def test_the_nodes_pip_config_and_ca_bundle_are_mounted_read_only(tmp_path: Path) -> None:
    global_conf, user_conf, bundle = _node(tmp_path)
    environ = {"HOME": str(tmp_path / "home"), "PIP_CERT": str(bundle)}
    binds, env = pip_config_mounts(
        _config(tmp_path, share_pip_config=True), environ,
        global_files=(str(global_conf), str(tmp_path / "etc" / "xdg-missing.conf")),
    )
    assert binds == [
        f"{global_conf}:{global_conf}:ro",  # global files keep their path; missing ones are skipped
        f"{user_conf}:{CONTAINER_PIP_CONFIG}:ro",
        f"{bundle}:{CONTAINER_CA_BUNDLE}:ro",
    ]
    assert env == {"PIP_CONFIG_FILE": CONTAINER_PIP_CONFIG, "PIP_CERT": CONTAINER_CA_BUNDLE,
                   "SSL_CERT_FILE": CONTAINER_CA_BUNDLE, "REQUESTS_CA_BUNDLE": CONTAINER_CA_BUNDLE}


def test_pip_config_file_wins_and_configured_paths_override_detection(tmp_path: Path) -> None:
    _, user_conf, bundle = _node(tmp_path)
    chosen = tmp_path / "chosen.conf"
    chosen.write_text("[global]\n")
    environ = {"HOME": str(tmp_path / "home"), "PIP_CONFIG_FILE": str(chosen)}
    binds, _ = pip_config_mounts(_config(tmp_path, share_pip_config=True), environ, global_files=())
    assert binds[0] == f"{chosen}:{CONTAINER_PIP_CONFIG}:ro"
    configured = _config(tmp_path, share_pip_config=True, pip_config_file=str(user_conf), ca_bundle=str(bundle))
    binds, _ = pip_config_mounts(configured, environ, global_files=())
    assert binds == [f"{user_conf}:{CONTAINER_PIP_CONFIG}:ro", f"{bundle}:{CONTAINER_CA_BUNDLE}:ro"]
    # PIP_CONFIG_FILE=/dev/null: the node's pip reads no file, so none is shared (the CA bundle still is).
    binds, env = pip_config_mounts(configured, {**environ, "PIP_CONFIG_FILE": "/dev/null"}, global_files=())
    assert binds == [f"{bundle}:{CONTAINER_CA_BUNDLE}:ro"] and "PIP_CONFIG_FILE" not in env


def test_nothing_missing_is_ever_mounted(tmp_path: Path) -> None:
    config = _config(tmp_path, share_pip_config=True, ca_bundle=str(tmp_path / "no.crt"))
    assert pip_config_mounts(config, {"HOME": str(tmp_path)}, global_files=(str(tmp_path / "no.conf"),)) == ([], {})


def test_the_option_reaches_the_container_config(tmp_path: Path, monkeypatch: Any) -> None:
    _, _, bundle = _node(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PIP_CONFIG_FILE", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    (tmp_path / "agent.toml").write_text(f'[sessions]\nshare_pip_config = true\nca_bundle = "{bundle}"\n')
    config = load_agent_config(tmp_path / "agent.toml")
    allocation = Allocation(cpu=Decimal(1), mem=2**30, cpu_cores=(0,)).to_json()
    spec = KernelSpec(kernel_id="k", session_id="s", image="img", allocation=allocation, env={"PIP_CERT": "/mine"})
    container = build_container_config(spec, config, tmp_path / "k", Path("/pkg/kernels"), {})
    binds = container["HostConfig"]["Binds"]
    assert f"{bundle}:{CONTAINER_CA_BUNDLE}:ro" in binds
    assert f"{tmp_path / 'home' / '.config' / 'pip' / 'pip.conf'}:{CONTAINER_PIP_CONFIG}:ro" in binds
    env = dict(item.split("=", 1) for item in container["Env"])
    assert env["PIP_CONFIG_FILE"] == CONTAINER_PIP_CONFIG and env["SSL_CERT_FILE"] == CONTAINER_CA_BUNDLE
    assert env["PIP_CERT"] == "/mine"  # the session's own env wins
    off = build_container_config(spec, AgentConfig(), tmp_path / "k", Path("/pkg/kernels"), {})
    assert not any(CONTAINER_CA_BUNDLE in bind for bind in off["HostConfig"]["Binds"])
