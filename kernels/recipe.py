"""Image recipes: small TOML files under ``kernels/recipes/`` describing an image.

A recipe names the image, the Debian suite and the packages to bootstrap, and
extra labels. The builder adds the labels every Corral image carries
(``ai.corral.image``, ``ai.corral.recipe``, ``ai.corral.recipe-digest``).
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from corral.kernels.errors import InvalidRecipe, UnknownRecipe

RECIPES_DIR = Path(__file__).parent / "recipes"

IMAGE_LABEL = "ai.corral.image"
RECIPE_LABEL = "ai.corral.recipe"
RECIPE_DIGEST_LABEL = "ai.corral.recipe-digest"
SERVICES_LABEL = "ai.corral.services"  # e.g. "jupyterlab:http:8888,sshd:tcp:2200" (see kernels/services.py)

_KNOWN_KEYS = {"name", "description", "tag", "aliases", "suite", "packages", "labels"}


@dataclass(frozen=True)
class Recipe:
    name: str
    tag: str
    suite: str
    packages: tuple[str, ...]
    description: str = ""
    aliases: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """Changes whenever what the recipe asks for changes (stored as a label)."""
        document = {
            "suite": self.suite,
            "packages": sorted(self.packages),
            "labels": self.labels,
        }
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
    path = directory / f"{name}.toml"
    if "/" in name or not path.is_file():
        known = ", ".join(recipe.name for recipe in list_recipes(directory)) or "none"
        raise UnknownRecipe(f"no image recipe named {name!r} (known: {known})")
    return load_recipe_file(path)


def load_recipe_file(path: Path) -> Recipe:
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InvalidRecipe(f"{path}: {error}") from error
    unknown = set(document) - _KNOWN_KEYS
    if unknown:
        raise InvalidRecipe(f"{path}: unknown keys {sorted(unknown)}")
    try:
        recipe = Recipe(
            name=_require_str(document, "name"),
            tag=_require_str(document, "tag"),
            suite=_require_str(document, "suite"),
            packages=tuple(_str_list(document.get("packages", []), "packages")),
            description=str(document.get("description", "")),
            aliases=tuple(_str_list(document.get("aliases", []), "aliases")),
            labels={str(key): str(value) for key, value in dict(document.get("labels", {})).items()},
        )
    except (TypeError, ValueError) as error:
        raise InvalidRecipe(f"{path}: {error}") from error
    if recipe.name != path.stem:
        raise InvalidRecipe(f"{path}: name {recipe.name!r} must match the file name")
    if not recipe.packages:
        raise InvalidRecipe(f"{path}: 'packages' must not be empty")
    return recipe


def _require_str(document: dict, key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key!r} must be a non-empty string")
    return value


def _str_list(value: object, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{key!r} must be a list of non-empty strings")
    return list(value)
