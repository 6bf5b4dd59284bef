"""Image recipes under kernels/recipes/."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.kernels.errors import InvalidRecipe, UnknownRecipe
from corral.kernels.recipe import Recipe, list_recipes, load_recipe


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
        ('name = "r"\ntag = "t"\nsuite = "bookworm"\npackages = ["a"]\napt = ["x"]\n', "unknown keys"),
        ('name = "other"\ntag = "t"\nsuite = "bookworm"\npackages = ["a"]\n', "must match the file name"),
        ('name = "r"\nsuite = "bookworm"\npackages = ["a"]\n', "'tag' must be"),
        ("name = ", "r.toml"),
    ],
)
def test_invalid_recipes_are_rejected(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "r.toml").write_text(text)
    with pytest.raises(InvalidRecipe, match=message):
        load_recipe("r", tmp_path)


# --------------------------------------------------------------------------
# Layered recipes: base + pip
# --------------------------------------------------------------------------

_BASE = 'name = "b"\ntag = "corral/b:1"\nsuite = "bookworm"\npackages = ["python3", "python3-venv"]\n'
_BASE_LABELS = '[labels]\n"ai.corral.services" = "sshd:tcp:2200"\n"x.keep" = "base"\n'
_LAYER = 'name = "l"\ntag = "corral/l:1"\nbase = "b"\n'


def _write(directory: Path, name: str, text: str) -> None:
    (directory / f"{name}.toml").write_text(text)


def _layered(tmp_path: Path, layer: str = _LAYER + 'pip = ["jupyterlab>=4.2,<5"]\n', base: str = _BASE) -> Recipe:
    _write(tmp_path, "b", base + _BASE_LABELS)
    _write(tmp_path, "l", layer)
    return load_recipe("l", tmp_path)


def test_the_jupyter_recipe() -> None:
    recipe = load_recipe("jupyter")
    python = load_recipe("python")
    assert recipe.tag == "corral/jupyter:4-py3.11"
    assert recipe.aliases == ("corral/jupyter:latest",)
    assert recipe.base == "python" and recipe.pip == ("jupyterlab>=4.2,<5",)
    assert recipe.suite == python.suite and recipe.packages == ()
    labels = recipe.image_labels()
    assert labels["ai.corral.services"] == "jupyterlab:http:8888,sshd:tcp:2200"
    assert labels["ai.corral.recipe"] == "jupyter"
    assert labels["ai.corral.recipe-digest"] == recipe.digest != python.digest
    assert {"python", "jupyter"} <= {r.name for r in list_recipes()}


def test_a_based_recipe_takes_suite_and_labels_from_its_base(tmp_path: Path) -> None:
    recipe = _layered(tmp_path, _LAYER + 'pip = ["six"]\n[labels]\n"ai.corral.services" = "jupyterlab:http:8888"\n')
    assert recipe.suite == "bookworm"
    assert recipe.packages == ()
    assert recipe.base_recipe is not None and recipe.base_recipe.name == "b"
    assert recipe.labels == {"ai.corral.services": "jupyterlab:http:8888", "x.keep": "base"}
    labels = recipe.image_labels()
    assert labels["ai.corral.services"] == "jupyterlab:http:8888"  # its own label wins
    assert labels["x.keep"] == "base"
    assert labels["ai.corral.recipe"] == "l"


def test_a_based_recipe_needs_no_pip(tmp_path: Path) -> None:
    recipe = _layered(tmp_path, _LAYER + 'packages = []\n[labels]\n"x.keep" = "mine"\n')
    assert recipe.pip == () and recipe.labels["x.keep"] == "mine"


def test_the_digest_follows_the_base_the_pip_list_and_the_labels(tmp_path: Path) -> None:
    first = _layered(tmp_path).digest
    assert _layered(tmp_path).digest == first  # stable
    changed_base = _layered(tmp_path, base=_BASE.replace('"python3",', '"python3", "procps",')).digest
    changed_pip = _layered(tmp_path, _LAYER + 'pip = ["jupyterlab>=4.2,<5", "numpy"]\n').digest
    changed_labels = _layered(tmp_path, _LAYER + 'pip = ["jupyterlab>=4.2,<5"]\n[labels]\n"x.keep" = "other"\n').digest
    no_pip = _layered(tmp_path, _LAYER).digest
    digests = [first, changed_base, changed_pip, changed_labels, no_pip]
    assert len(set(digests)) == len(digests)


def test_the_base_is_looked_up_when_the_recipe_was_made_by_hand() -> None:
    python = load_recipe("python")
    recipe = Recipe(name="x", tag="corral/x:1", suite=python.suite, packages=(), base="python", pip=("six",))
    assert recipe.resolved_base() == python
    other = Recipe(name="x", tag="corral/x:1", suite=python.suite, packages=(), base="python", pip=("seven",))
    assert recipe.digest != other.digest


def test_a_plain_recipe_keeps_its_old_digest(tmp_path: Path) -> None:
    """New keys only enter the digest when used, so existing images are not rebuilt for nothing."""
    import hashlib

    _write(tmp_path, "r", 'name = "r"\ntag = "corral/r:1"\nsuite = "bookworm"\npackages = ["b", "a"]\n')
    document = {"suite": "bookworm", "packages": ["a", "b"], "labels": {}}
    expected = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]
    assert load_recipe("r", tmp_path).digest == expected


def test_pip_on_a_bootstrapped_recipe_needs_python3_venv(tmp_path: Path) -> None:
    text = 'name = "r"\ntag = "t"\nsuite = "bookworm"\npackages = ["python3"]\npip = ["six"]\n'
    _write(tmp_path, "r", text)
    with pytest.raises(InvalidRecipe, match="python3-venv"):
        load_recipe("r", tmp_path)
    _write(tmp_path, "r", text.replace('["python3"]', '["python3", "python3-venv"]'))
    assert load_recipe("r", tmp_path).pip == ("six",)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (_LAYER + 'packages = ["procps"]\n', "takes its packages from the base"),
        (_LAYER + 'pip = ["six"]\napt = ["x"]\n', "unknown keys"),
        (_LAYER + 'pip = ["six"]\nsuite = "trixie"\n', "'suite' comes from the base"),
        (_LAYER.replace('base = "b"', 'base = "nope"') + 'pip = ["six"]\n', "base: no image recipe named 'nope'"),
        (_LAYER.replace('base = "b"', 'base = "l"') + 'pip = ["six"]\n', "cycle: l -> l"),
        (_LAYER.replace('base = "b"', 'base = ""'), "'base' must be a non-empty string"),
        (_LAYER + 'pip = "six"\n', "'pip' must be a list"),
        (_LAYER + 'pip = [""]\n', "'pip' must be a list"),
        (_LAYER + 'pip = ["--index-url=file:///x", "six"]\n', "not a pip option"),
        (_LAYER + 'pip = ["six @ file:///tmp/six.whl"]\n', "not a pip option, URL or path"),
        (_LAYER + 'pip = ["./six"]\n', "requirement specifier"),
    ],
)
def test_invalid_based_recipes_are_rejected(tmp_path: Path, layer: str, message: str) -> None:
    with pytest.raises(InvalidRecipe, match=message):
        _layered(tmp_path, layer)


def test_a_suite_equal_to_the_bases_is_accepted(tmp_path: Path) -> None:
    assert _layered(tmp_path, _LAYER + 'suite = "bookworm"\npip = ["six"]\n').suite == "bookworm"


def test_an_invalid_base_is_reported(tmp_path: Path) -> None:
    with pytest.raises(InvalidRecipe, match="b.toml.*must not be empty"):
        _layered(tmp_path, base=_BASE.replace('["python3", "python3-venv"]', "[]"))


def test_bases_may_be_layered(tmp_path: Path) -> None:
    _layered(tmp_path)
    _write(tmp_path, "top", 'name = "top"\ntag = "corral/top:1"\nbase = "l"\npip = ["six"]\n')
    top = load_recipe("top", tmp_path)
    assert top.suite == "bookworm" and top.labels["x.keep"] == "base"
    _write(tmp_path, "l", _LAYER + 'pip = ["numpy"]\n')
    assert load_recipe("top", tmp_path).digest != top.digest  # the base's base changed: so did the base's digest


@pytest.mark.parametrize(
    "requirement",
    ["jupyterlab>=4.2,<5", "jupyterlab", "numpy==2.*", "Foo_bar.baz[extra1, extra2]>=1", "six; python_version>='3'",
     "pandas ~= 2.2"],
)
def test_requirement_specifiers_are_accepted(tmp_path: Path, requirement: str) -> None:
    recipe = _layered(tmp_path, _LAYER + f"pip = [{json.dumps(requirement)}]\n")  # a JSON string is a TOML one
    assert recipe.pip == (requirement,)
