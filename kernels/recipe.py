"""Image recipes: small TOML files under ``kernels/recipes/`` describing an image.

A recipe names the image, the Debian suite and the packages to bootstrap, and
extra labels. The builder adds the labels every Corral image carries
(``ai.corral.image``, ``ai.corral.recipe``, ``ai.corral.recipe-digest``).

A *layered* recipe names another recipe as ``base`` (it takes that recipe's
suite and labels, its own ``[labels]`` overriding them, and has no
``packages``), and ``pip`` lists requirement specifiers installed into a
virtualenv at ``/opt/venv`` (see ``pip_layer``); ``pip`` also works on a
bootstrapped recipe that includes ``python3-venv``.

*Variants*: ``[variants.cpu]`` / ``[variants.cuda]`` tables (keys ``pip``,
``tag``, ``aliases``, ``labels``, ``description``) give one recipe a build per
kind of host; ``variants.choose_variant`` picks one when the recipe is loaded
(``{variant}`` in ``tag`` / ``aliases`` is replaced by its name, its ``pip``
comes after the recipe's own, and the image gets ``ai.corral.variant``).

Recipes are looked up by name in ``recipe_dirs()``: each directory of
``$CORRAL_RECIPES_DIR`` (``:``-separated), ``$XDG_CONFIG_HOME/corral/recipes``
(default ``~/.config/corral/recipes``), then the shipped ``kernels/recipes``;
the first match wins, so a user's recipe may shadow a shipped one. A name
that is a path (contains ``/`` or ends in ``.toml``) is loaded from that file.
A base is looked up in its recipe's own directory first, then in the same
directories.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from corral.kernels import variants as variant_choice
from corral.kernels.errors import InvalidRecipe, UnknownRecipe

RECIPES_DIR = Path(__file__).parent / "recipes"

IMAGE_LABEL = "ai.corral.image"
RECIPE_LABEL = "ai.corral.recipe"
RECIPE_DIGEST_LABEL = "ai.corral.recipe-digest"
SERVICES_LABEL = "ai.corral.services"  # e.g. "jupyterlab:http:8888,sshd:tcp:2200" (see kernels/services.py)
VARIANT_LABEL = "ai.corral.variant"  # "cpu" / "cuda": the variant a recipe was built as
# What an image contains, read by a probe in the built image (kernels/image_probe.py), so listing is a label read.
PYTHON_LABEL = "ai.corral.python"  # "3.11.2"
FRAMEWORKS_LABEL = "ai.corral.frameworks"  # "torch 2.13.0+cpu" (comma-separated; "" when none)
RECIPES_DIR_ENV = "CORRAL_RECIPES_DIR"

_KNOWN_KEYS = {"name", "description", "tag", "aliases", "suite", "packages", "labels", "base", "pip", "variants"}
_VARIANT_KEYS = {"pip", "tag", "aliases", "labels", "description"}
_VARIANT_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
# A name, optional [extras], then version specifiers / a marker: no pip options ("--index-url ..."), no URLs or
# paths ("name @ https://..."), so every package comes through the host's pip configuration.
_PIP_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[A-Za-z0-9._,\s-]*\])?\s*([<>=!~(;][^@]*)?$")


@dataclass(frozen=True)
class Recipe:
    name: str
    tag: str
    suite: str
    packages: tuple[str, ...]
    description: str = ""
    aliases: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)  # a based recipe's: the base's, updated with its own
    base: str | None = None  # name of the recipe whose image this one is built on
    pip: tuple[str, ...] = ()  # requirement specifiers installed into /opt/venv
    # The base as loaded from the same recipes directory (None: look it up in RECIPES_DIR when needed).
    base_recipe: Recipe | None = field(default=None, compare=False, repr=False)
    variant: str | None = None  # the chosen variant ("cpu", "cuda") of a recipe that has variants
    variants: tuple[str, ...] = ()  # all the recipe's variants
    path: Path | None = field(default=None, compare=False, repr=False)  # the file it was loaded from

    def resolved_base(self) -> Recipe | None:
        if self.base is None:
            return None
        return self.base_recipe if self.base_recipe is not None else load_recipe(self.base)

    @property
    def digest(self) -> str:
        """Changes whenever what the recipe asks for changes (stored as a label), a based recipe's also
        whenever its base's digest changes."""
        document: dict[str, object] = {
            "suite": self.suite,
            "packages": sorted(self.packages),
            "labels": self.labels,
        }
        # Only present when used, so the digests of plain bootstrapped recipes stay what they were.
        base = self.resolved_base()
        if base is not None:
            document["base"] = {"name": base.name, "digest": base.digest}
        if self.pip:
            document["pip"] = list(self.pip)
        if self.variant is not None:
            document["variant"] = self.variant
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]

    def image_labels(self) -> dict[str, str]:
        labels = {SERVICES_LABEL: ""}
        labels.update(self.labels)
        if self.variant is not None:
            labels[VARIANT_LABEL] = self.variant
        labels[IMAGE_LABEL] = "1"
        labels[RECIPE_LABEL] = self.name
        labels[RECIPE_DIGEST_LABEL] = self.digest
        return labels


def recipe_dirs(environ: Mapping[str, str] = os.environ) -> list[Path]:
    """Where recipes are looked up by name, first match wins: ``$CORRAL_RECIPES_DIR`` (``:``-separated),
    ``$XDG_CONFIG_HOME/corral/recipes`` (default ``~/.config/corral/recipes``), the shipped recipes."""
    directories = [Path(entry).expanduser() for entry in environ.get(RECIPES_DIR_ENV, "").split(os.pathsep) if entry]
    config_home = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME") or str(Path.home()), ".config")
    directories.append(Path(config_home).expanduser() / "corral" / "recipes")
    directories.append(RECIPES_DIR)
    return list(dict.fromkeys(directories))


def list_recipes(directory: Path | None = RECIPES_DIR, *, accelerator: str | None = None) -> list[Recipe]:
    """All recipes in ``directory`` (None: every ``recipe_dirs()`` directory, a name's first one winning),
    sorted by name. A recipe with no variant for this host is listed as its first variant."""
    directories = [directory] if directory is not None else recipe_dirs()
    paths: dict[str, Path] = {}
    for each in directories:
        for path in sorted(each.glob("*.toml")):
            paths.setdefault(path.stem, path)
    search = tuple(directories)
    recipes = []
    for _, path in sorted(paths.items()):
        try:
            recipes.append(load_recipe_file(path, accelerator=accelerator, search=search))
        except variant_choice.NoSuitableVariant as error:
            recipes.append(load_recipe_file(path, variant=error.available[0], accelerator=accelerator, search=search))
    return recipes


def load_recipe(
    name: str | Path,
    directory: Path | None = None,
    *,
    variant: str | None = None,
    accelerator: str | None = None,
) -> Recipe:
    """The recipe ``name`` from ``directory`` (None: the first of ``recipe_dirs()`` that has it), or from the
    file ``name`` when it is a path (has a ``/`` or ends in ``.toml``). ``variant`` asks for one variant;
    else the best for ``accelerator`` (None: this host's, see ``variants.detect_accelerator``)."""
    directories = (directory,) if directory is not None else tuple(recipe_dirs())
    if is_recipe_path(name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise UnknownRecipe(f"no recipe file {str(path)!r}")
        return load_recipe_file(path, variant=variant, accelerator=accelerator, search=directories)
    return _load_recipe(str(name), directories, (), variant, accelerator)


def is_recipe_path(name: str | Path) -> bool:
    """Whether a recipe argument names a file rather than a recipe."""
    return isinstance(name, Path) or "/" in name or name.endswith(".toml")


def _load_recipe(
    name: str, directories: tuple[Path, ...], chain: tuple[str, ...], variant: str | None, accelerator: str | None
) -> Recipe:
    if "/" not in name:
        for directory in directories:
            path = directory / f"{name}.toml"
            if path.is_file():
                return load_recipe_file(path, variant=variant, accelerator=accelerator, search=directories, _chain=chain)
    known = ", ".join(sorted({path.stem for directory in directories for path in directory.glob("*.toml")})) or "none"
    raise UnknownRecipe(f"no image recipe named {name!r} (known: {known})")


def load_recipe_file(
    path: Path,
    *,
    variant: str | None = None,
    accelerator: str | None = None,
    search: tuple[Path, ...] = (),
    _chain: tuple[str, ...] = (),
) -> Recipe:
    """One recipe file; its base is looked up next to it, then in ``search``."""
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InvalidRecipe(f"{path}: {error}") from error
    unknown = set(document) - _KNOWN_KEYS
    if unknown:
        raise InvalidRecipe(f"{path}: unknown keys {sorted(unknown)}")
    try:
        name = _require_str(document, "name")
        variant_tables = _variant_tables(document.get("variants", {}))
        if variant_tables and not variant and accelerator is None:
            accelerator = variant_choice.detect_accelerator()
        chosen = variant_choice.choose_variant(
            name, list(variant_tables), accelerator=accelerator or variant_choice.CPU, requested=variant
        )
        own: dict = variant_tables.get(chosen, {}) if chosen is not None else {}
        base_name = _require_str(document, "base") if "base" in document else None
        pip = _requirements(document.get("pip", [])) + _requirements(own.get("pip", []))
        labels = {str(key): str(value) for key, value in dict(document.get("labels", {})).items()}
        labels.update({str(key): str(value) for key, value in dict(own.get("labels", {})).items()})
        tag = _with_variant(_require_str(own if "tag" in own else document, "tag"), chosen, "tag")
        aliases = [
            _with_variant(alias, chosen, "aliases")
            for alias in _str_list(own["aliases"] if "aliases" in own else document.get("aliases", []), "aliases")
        ]
        base_accelerator = variant if variant in variant_choice.ACCELERATORS else accelerator
        base = (
            _load_base(path, document, base_name, _chain, search, base_accelerator) if base_name is not None else None
        )
        recipe = Recipe(
            name=name,
            tag=tag,
            suite=base.suite if base is not None else _require_str(document, "suite"),
            packages=tuple(_str_list(document.get("packages", []), "packages")),
            description=str(own.get("description", document.get("description", ""))),
            aliases=tuple(aliases),
            labels={**base.labels, **labels} if base is not None else labels,
            base=base_name,
            pip=pip,
            base_recipe=base,
            variant=chosen,
            variants=tuple(variant_tables),
            path=path,
        )
    except (TypeError, ValueError) as error:
        raise InvalidRecipe(f"{path}: {error}") from error
    if recipe.name != path.stem:
        raise InvalidRecipe(f"{path}: name {recipe.name!r} must match the file name")
    if base is not None:
        if recipe.packages:
            raise InvalidRecipe(f"{path}: a recipe with a 'base' takes its packages from the base; drop 'packages'")
    elif not recipe.packages:
        raise InvalidRecipe(f"{path}: 'packages' must not be empty")
    elif recipe.pip and "python3-venv" not in recipe.packages:
        raise InvalidRecipe(f"{path}: 'pip' needs 'python3-venv' in 'packages'")
    return recipe


def _variant_tables(value: object) -> dict[str, dict]:
    """``[variants.<name>]`` tables, checked: known keys only."""
    if not isinstance(value, dict) or not all(isinstance(table, dict) for table in value.values()):
        raise ValueError("'variants' must be a table of tables ([variants.cpu], [variants.cuda])")
    for variant, table in value.items():
        if not _VARIANT_NAME.match(variant):
            raise ValueError(f"variant name {variant!r} must be lower-case letters, digits, '-' or '_'")
        unknown = set(table) - _VARIANT_KEYS
        if unknown:
            raise ValueError(f"variant {variant!r}: unknown keys {sorted(unknown)} (allowed: {sorted(_VARIANT_KEYS)})")
        _requirements(table.get("pip", []))  # every variant's, not only the chosen one's
    return dict(value)


def _requirements(value: object) -> tuple[str, ...]:
    requirements = tuple(_str_list(value, "pip"))
    for requirement in requirements:
        if not _PIP_REQUIREMENT.match(requirement):
            raise ValueError(
                f"'pip' entry {requirement!r} must be a requirement specifier (name, [extras], versions), "
                "not a pip option, URL or path"
            )
    return requirements


def _with_variant(text: str, variant: str | None, key: str) -> str:
    if "{variant}" in text and variant is None:
        raise ValueError(f"{key!r} uses '{{variant}}' but the recipe has no [variants]")
    return text.replace("{variant}", variant or "")


def _load_base(
    path: Path, document: dict, base_name: str, chain: tuple[str, ...], search: tuple[Path, ...],
    accelerator: str | None,
) -> Recipe:
    """The base recipe, from the same directory, else from ``search``; suite must be absent or the base's."""
    chain = (*chain, path.stem)
    if base_name in chain:
        raise InvalidRecipe(f"{path}: recipe bases form a cycle: {' -> '.join((*chain, base_name))}")
    try:
        base = _load_recipe(base_name, tuple(dict.fromkeys((path.parent, *search))), chain, None, accelerator)
    except UnknownRecipe as error:
        raise InvalidRecipe(f"{path}: base: {error}") from error
    if "suite" in document and document["suite"] != base.suite:
        raise InvalidRecipe(f"{path}: 'suite' comes from the base ({base.suite!r}); drop it")
    return base


def _require_str(document: dict, key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key!r} must be a non-empty string")
    return value


def _str_list(value: object, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{key!r} must be a list of non-empty strings")
    return list(value)
