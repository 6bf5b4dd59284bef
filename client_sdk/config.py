"""Where the client finds the manager and its keypair.

Precedence, lowest to highest: the TOML file, the environment
(``CORRAL_ENDPOINT``, ``CORRAL_ACCESS_KEY``, ``CORRAL_SECRET_KEY``), then
explicit overrides (the CLI's ``--endpoint``).

The file is ``$CORRAL_CONFIG`` when set, else
``$XDG_CONFIG_HOME/corral/client.toml`` (``~/.config/corral/client.toml``)::

    endpoint = "http://127.0.0.1:8090"
    access_key = "AK..."
    secret_key = "..."
"""
from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from corral.common.errors import ConfigError
from corral.common.private_file import write_atomically

ENV_CONFIG_PATH = "CORRAL_CONFIG"
ENV_ENDPOINT = "CORRAL_ENDPOINT"
ENV_ACCESS_KEY = "CORRAL_ACCESS_KEY"
ENV_SECRET_KEY = "CORRAL_SECRET_KEY"

_FIELDS_BY_ENV = {ENV_ENDPOINT: "endpoint", ENV_ACCESS_KEY: "access_key", ENV_SECRET_KEY: "secret_key"}


@dataclass(frozen=True)
class ClientConfig:
    endpoint: str
    access_key: str = ""
    secret_key: str = ""
    # Where each value came from ("file", "env CORRAL_ENDPOINT", "--endpoint"),
    # shown by `corral config show`; not part of equality.
    origin: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def has_credentials(self) -> bool:
        return bool(self.access_key and self.secret_key)


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(ENV_CONFIG_PATH):
        return Path(env[ENV_CONFIG_PATH]).expanduser()
    xdg = env.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "corral" / "client.toml"


def _read_file(path: Path) -> dict[str, str]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid client config: {path} is corrupt: {exc}; fix or delete it") from None
    except OSError as exc:
        raise ConfigError(f"cannot read client config {path}: {exc.strerror}") from None
    values: dict[str, str] = {}
    for key in ("endpoint", "access_key", "secret_key"):
        if key in data:
            if not isinstance(data[key], str):
                raise ConfigError(f"invalid client config: {path} is corrupt: {key} must be a string; fix or delete it")
            values[key] = data[key]
    return values


@dataclass(frozen=True)
class ClientSettings:
    """The merged raw values before validation, and where each came from."""

    path: Path
    values: Mapping[str, str]
    origin: Mapping[str, str]


def resolve_client_settings(
    path: Path | None = None, *, endpoint: str | None = None, environ: Mapping[str, str] | None = None
) -> ClientSettings:
    env = os.environ if environ is None else environ
    config_path = path or default_config_path(env)
    values: dict[str, str] = {}
    origin: dict[str, str] = {}
    for key, value in _read_file(config_path).items():
        values[key] = value
        origin[key] = f"file {config_path}"
    for env_name, key in _FIELDS_BY_ENV.items():
        if env.get(env_name):
            values[key] = env[env_name]
            origin[key] = f"env {env_name}"
    if endpoint:
        values["endpoint"] = endpoint
        origin["endpoint"] = "--endpoint"
    return ClientSettings(config_path, values, origin)


def load_client_config(
    path: Path | None = None,
    *,
    endpoint: str | None = None,
    require_credentials: bool = True,
    environ: Mapping[str, str] | None = None,
) -> ClientConfig:
    """Merge file < env < ``endpoint`` override; raise ConfigError naming what is missing."""
    settings = resolve_client_settings(path, endpoint=endpoint, environ=environ)
    values = settings.values
    missing: list[str] = []
    if not values.get("endpoint"):
        missing.append(ENV_ENDPOINT)
    if require_credentials:
        if not values.get("access_key"):
            missing.append(ENV_ACCESS_KEY)
        if not values.get("secret_key"):
            missing.append(ENV_SECRET_KEY)
    if missing:
        raise ConfigError(
            f"no client configuration for {', '.join(missing)}: run `corral login ENDPOINT` (ask your admin "
            f"for keys) or `corral up` to run a local stack (both write {settings.path}), "
            f"or set {', '.join(missing)} in the environment"
        )
    return ClientConfig(
        endpoint=normalize_endpoint(values["endpoint"]),
        access_key=values.get("access_key", ""),
        secret_key=values.get("secret_key", ""),
        origin=dict(settings.origin),
    )


def normalize_endpoint(endpoint: str) -> str:
    endpoint = endpoint.strip().rstrip("/")
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"endpoint must be an http:// or https:// URL, not {endpoint!r}")
    return endpoint


def write_client_config(path: Path | None, config: ClientConfig) -> Path:
    """Write the config file readable by its owner only (mode 0600); returns its path."""
    target = Path(path) if path is not None else default_config_path()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # json.dumps of a str is a valid TOML basic string (same escapes).
    text = "".join(
        f"{key} = {json.dumps(value)}\n"
        for key, value in (
            ("endpoint", config.endpoint),
            ("access_key", config.access_key),
            ("secret_key", config.secret_key),
        )
    )
    write_atomically(target, "# Written by corral; the secret key grants full access to this account.\n" + text)
    return target
