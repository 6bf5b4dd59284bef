"""Image recipes under kernels/recipes/."""
from __future__ import annotations

from pathlib import Path

import pytest

from corral.kernels.errors import InvalidRecipe, UnknownRecipe
from corral.kernels.recipe import list_recipes, load_recipe


def test_the_base_recipe() -> None:
    recipe = load_recipe("python")
    assert recipe.tag == "corral/python:3.11-bookworm"
    assert recipe.aliases == ("corral/python:latest",)
    assert recipe.suite == "bookworm"
    assert "python3" in recipe.packages
    labels = recipe.image_labels()
    assert labels["ai.corral.image"] == "1"
    assert labels["ai.corral.recipe"] == "python"
    assert labels["ai.corral.services"] == "sshd:tcp:2200"
    assert len(labels["ai.corral.recipe-digest"]) == 16
    assert "python" in [r.name for r in list_recipes()]


def test_unknown_recipe_names_the_known_ones() -> None:
    with pytest.raises(UnknownRecipe, match="known: .*python"):
        load_recipe("no-such-recipe")


def test_digest_follows_the_contents(tmp_path: Path) -> None:
    base = 'name = "r"\ntag = "corral/r:1"\nsuite = "bookworm"\n'
    (tmp_path / "r.toml").write_text(base + 'packages = ["python3"]\n')
    first = load_recipe("r", tmp_path).digest
    (tmp_path / "r.toml").write_text(base + 'packages = ["python3", "procps"]\n')
    assert load_recipe("r", tmp_path).digest != first


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "r"\ntag = "t"\nsuite = "bookworm"\npackages = []\n', "must not be empty"),
        ('name = "r"\ntag = "t"\nsuite = "bookworm"\npackages = ["a"]\npip = ["x"]\n', "unknown keys"),
        ('name = "other"\ntag = "t"\nsuite = "bookworm"\npackages = ["a"]\n', "must match the file name"),
        ('name = "r"\nsuite = "bookworm"\npackages = ["a"]\n', "'tag' must be"),
        ("name = ", "r.toml"),
    ],
)
def test_invalid_recipes_are_rejected(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "r.toml").write_text(text)
    with pytest.raises(InvalidRecipe, match=message):
        load_recipe("r", tmp_path)
