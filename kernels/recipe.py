"""Image recipes: small TOML files under ``kernels/recipes/`` describing an image.

A recipe names the image, the Debian suite and the packages to bootstrap, and
extra labels. The builder adds the labels every Corral image carries
(``ai.corral.image``, ``ai.corral.recipe``, ``ai.corral.recipe-digest``).

A *layered* recipe names another recipe as ``base`` (it takes that recipe's
suite and labels, its own ``[labels]`` overriding them, and has no
``packages``), and ``pip`` lists requirement specifiers installed into a
virtualenv at ``/opt/venv`` (see ``pip_layer``); ``pip`` also works on a
bootstrapped recipe that includes ``python3-venv``.
"""
from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from corral.kernels.errors import InvalidRecipe, UnknownRecipe

RECIPES_DIR = Path(__file__).parent / "recipes"

IMAGE_LABEL = "ai.corral.image"
RECIPE_LABEL = "ai.corral.recipe"
RECIPE_DIGEST_LABEL = "ai.corral.recipe-digest"
SERVICES_LABEL = "ai.corral.services"  # e.g. "jupyterlab:http:8888,sshd:tcp:2200" (see kernels/services.py)

_KNOWN_KEYS = {"name", "description", "tag", "aliases", "suite", "packages", "labels", "base", "pip"}
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
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]

    def image_labels(self) -> dict[str, str]:
        labels = {SERVICES_LABEL: ""}
        labels.update(self.labels)
        labels[IMAGE_LABEL] = "1"
        labels[RECIPE_LABEL] = self.name
        labels[RECIPE_DIGEST_LABEL] = self.digest
        return labels


def list_recipes(directory: Path = RECIPES_DIR) -> list[Recipe]:
    """All recipes shipped in ``directory``, sorted by name."""
    return [load_recipe_file(path) for path in sorted(directory.glob("*.toml"))]


def load_recipe(name: str, directory: Path = RECIPES_DIR) -> Recipe:
    return _load_recipe(name, directory, ())


def _load_recipe(name: str, directory: Path, chain: tuple[str, ...]) -> Recipe:
    path = directory / f"{name}.toml"
    if "/" in name or not path.is_file():
        known = ", ".join(path.stem for path in sorted(directory.glob("*.toml"))) or "none"
        raise UnknownRecipe(f"no image recipe named {name!r} (known: {known})")
    return load_recipe_file(path, _chain=chain)


def load_recipe_file(path: Path, *, _chain: tuple[str, ...] = ()) -> Recipe:
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InvalidRecipe(f"{path}: {error}") from error
    unknown = set(document) - _KNOWN_KEYS
    if unknown:
        raise InvalidRecipe(f"{path}: unknown keys {sorted(unknown)}")
    try:
        base_name = _require_str(document, "base") if "base" in document else None
        pip = tuple(_str_list(document.get("pip", []), "pip"))
        for requirement in pip:
            if not _PIP_REQUIREMENT.match(requirement):
                raise ValueError(
                    f"'pip' entry {requirement!r} must be a requirement specifier (name, [extras], versions), "
                    "not a pip option, URL or path"
                )
        labels = {str(key): str(value) for key, value in dict(document.get("labels", {})).items()}
        base = _load_base(path, document, base_name, _chain) if base_name is not None else None
        recipe = Recipe(
            name=_require_str(document, "name"),
            tag=_require_str(document, "tag"),
            suite=base.suite if base is not None else _require_str(document, "suite"),
            packages=tuple(_str_list(document.get("packages", []), "packages")),
            description=str(document.get("description", "")),
            aliases=tuple(_str_list(document.get("aliases", []), "aliases")),
            labels={**base.labels, **labels} if base is not None else labels,
            base=base_name,
            pip=pip,
            base_recipe=base,
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


def _load_base(path: Path, document: dict, base_name: str, chain: tuple[str, ...]) -> Recipe:
    """The base recipe, from the same directory; suite must be absent or the base's."""
    chain = (*chain, path.stem)
    if base_name in chain:
        raise InvalidRecipe(f"{path}: recipe bases form a cycle: {' -> '.join((*chain, base_name))}")
    try:
        base = _load_recipe(base_name, path.parent, chain)
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
