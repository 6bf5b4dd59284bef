"""Configuration loading: a TOML file, then environment variables on top.

Every component describes its configuration as a pydantic model. Values come
from (lowest to highest precedence) the model's defaults, the TOML file,
environment variables named ``<PREFIX><SECTION>__<KEY>`` (double underscore
between nesting levels), e.g. ``CORRAL_MANAGER_DB__URL``, and explicit
overrides.

An env value is read by the type of the field it sets: a ``str`` field takes
the text as it is (``12345``, ``true`` and ``null`` stay strings), scalar
fields (int, float, bool, Path, Literal) get the text and pydantic converts
it, and list, dict and section fields take JSON. A name under the prefix that
matches no field is an error, like an unknown key in the file. Errors name
the env var or the file the bad value came from.
"""
from __future__ import annotations

import json
import os
import tomllib
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)
KeyPath = tuple[str, ...]

_CONTAINERS = (list, tuple, set, frozenset, dict, Mapping)
_SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "KEY")
_SHOWN_VALUE_MAX = 60
_JSON_HINT = " (lists and sections are given as JSON, e.g. '[\"a\", \"b\"]')"


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


# --- what an annotation accepts ------------------------------------------------


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a (possibly Optional / Annotated) annotation, NoneType included."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _is_model(member: Any) -> bool:
    return isinstance(member, type) and issubclass(member, BaseModel)


def _is_container(member: Any) -> bool:
    origin = get_origin(member) or member
    return _is_model(member) or (isinstance(origin, type) and issubclass(origin, _CONTAINERS))


def _field_annotation(model: type[BaseModel], path: KeyPath) -> Any | None:
    """The annotation of the field ``path`` names in ``model``; None when it names no field."""
    annotation: Any = model
    for part in path:
        sections = [m for m in _members(annotation) if _is_model(m)]
        mappings = [m for m in _members(annotation) if get_origin(m) in (dict, Mapping)]
        if sections and part in sections[0].model_fields:
            annotation = sections[0].model_fields[part].annotation
        elif mappings and len(get_args(mappings[0])) == 2:
            annotation = get_args(mappings[0])[1]
        else:
            return None
    return annotation


def parse_env_value(raw: str, annotation: Any | None) -> Any:
    """``raw`` as the field typed ``annotation`` should receive it (see the module docstring)."""
    if annotation is None:
        return raw
    members = _members(annotation)
    optional = type(None) in members
    if any(_is_container(m) for m in members):
        try:
            value = json.loads(raw)
        except ValueError:
            return raw  # pydantic names the expected type
        if isinstance(value, (list, dict)) or (value is None and optional):
            return value
        return raw
    if optional and raw == "null" and str not in members:
        return None
    return raw  # pydantic's lax mode converts text to int / float / bool / Path


# --- where each value came from ---------------------------------------------


def _leaves(tree: Mapping[str, Any], prefix: KeyPath = ()) -> Iterator[KeyPath]:
    for key, value in tree.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, path)
        else:
            yield path


def _shown(name: str, raw: str) -> str:
    if any(word in name for word in _SECRET_WORDS):
        return f"{name}=<hidden>"
    if len(raw) > _SHOWN_VALUE_MAX:
        raw = raw[: _SHOWN_VALUE_MAX - 1] + "…"
    return f"{name}={raw}"


class _EnvVar(NamedTuple):
    name: str
    shown: str  # "NAME=value" (or "NAME=<hidden>") as errors show it
    path: KeyPath  # the key path NAME sets


class _EnvLayer:
    """The env vars under a prefix as a nested dict, each leaf remembering its variable."""

    def __init__(self, model: type[BaseModel], prefix: str, environ: Mapping[str, str]) -> None:
        self.tree: dict[str, Any] = {}
        self.leaves: dict[KeyPath, _EnvVar] = {}  # every leaf path set, and by which variable
        self.json_expected: set[str] = set()
        # Sorted, so a whole section (NAME) is set before keys inside it (NAME__KEY).
        for name, raw in sorted(environ.items()):
            if not name.startswith(prefix) or name == prefix:
                continue
            path = tuple(part.lower() for part in name[len(prefix):].split("__") if part)
            if path:
                self._set(model, name, path, raw)

    def _set(self, model: type[BaseModel], name: str, path: KeyPath, raw: str) -> None:
        annotation = _field_annotation(model, path)
        value = parse_env_value(raw, annotation)
        if annotation is not None and isinstance(value, str) and any(_is_container(m) for m in _members(annotation)):
            self.json_expected.add(name)
        node = self.tree
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                outer = self.leaves[path[: depth + 1]].name
                raise ConfigError(f"invalid configuration: {name} sets a key inside {outer}, which is not a section")
            node = child
        node[path[-1]] = value
        var = _EnvVar(name, _shown(name, raw), path)
        for leaf in _leaves({path[-1]: value}, path[:-1]):
            self.leaves[leaf] = var


def _source(loc: KeyPath, layers: list[tuple[str, Mapping[KeyPath, Any]]]) -> tuple[str, Any] | None:
    """(kind, what set it) of the layer that set the value at ``loc``, highest precedence first."""
    for kind, layer in layers:
        for depth in range(len(loc), 0, -1):
            if loc[:depth] in layer:
                return kind, layer[loc[:depth]]
    for kind, layer in layers:  # an error about a whole section: blame a value inside it
        inside = sorted(key for key in layer if loc and key[: len(loc)] == loc)
        if inside:
            return kind, layer[inside[0]]
    return None


def _describe(
    exc: ValidationError, path: str | os.PathLike[str] | None, env: _EnvLayer, file_keys: set[KeyPath],
    override_keys: set[KeyPath],
) -> str:
    layers = [("override", dict.fromkeys(override_keys)), ("env", env.leaves), ("file", dict.fromkeys(file_keys))]
    problems: list[tuple[str, str]] = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        kind, var = _source(loc, layers) or ("file" if path else "override", None)
        if isinstance(var, _EnvVar):
            rest = loc[len(var.path):]
            hint = _JSON_HINT if var.name in env.json_expected else ""
            problems.append((kind, f"{var.shown}: {'.'.join(rest) + ': ' if rest else ''}{err['msg']}{hint}"))
        else:
            problems.append((kind, f"{'.'.join(loc) or '(top level)'}: {err['msg']}"))
    in_file = [text for kind, text in problems if kind == "file"]
    elsewhere = [text for kind, text in problems if kind != "file"]
    if not elsewhere:
        return f"invalid configuration in {path}: {'; '.join(in_file)}"
    if in_file:
        elsewhere.append(f"in {path}: {'; '.join(in_file)}")
    return f"invalid configuration: {'; '.join(elsewhere)}"


# --- loading -----------------------------------------------------------------


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
    file_keys = set(_leaves(data))
    env = _EnvLayer(model, env_prefix, os.environ if environ is None else environ)
    data = _merge(data, env.tree)
    if overrides:
        data = _merge(data, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, env, file_keys, set(_leaves(overrides or {})))) from None


def default_data_dir() -> Path:
    return Path(os.environ.get("CORRAL_DATA_DIR", Path.home() / ".local/share/corral"))
