"""Configuration loading: a TOML file, then environment variables on top.

Every component describes its configuration as a pydantic model. Values come
from (lowest to highest precedence) the model's defaults, the TOML file, and
environment variables named ``<PREFIX><SECTION>__<KEY>`` (double underscore
between nesting levels), e.g. ``CORRAL_MANAGER_DB__URL``.
"""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def _env_overrides(prefix: str, environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(prefix) or name == prefix:
            continue
        path = [part.lower() for part in name[len(prefix):].split("__") if part]
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _parse_env_value(raw)
    return tree


def _parse_env_value(raw: str) -> Any:
    # JSON lets lists/numbers/booleans through; anything else stays a string.
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None


def load_config(
    model: type[ModelT],
    path: str | os.PathLike[str] | None = None,
    *,
    env_prefix: str,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ModelT:
    """Build ``model`` from defaults < TOML file < env vars < explicit overrides."""
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    data = _merge(data, _env_overrides(env_prefix, os.environ if environ is None else environ))
    if overrides:
        data = _merge(data, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration{where}: {problems}") from None


def default_data_dir() -> Path:
    return Path(os.environ.get("CORRAL_DATA_DIR", Path.home() / ".local/share/corral"))
