"""Recipe variants (cpu / cuda), the pytorch recipes, user recipe directories and recipe files."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from corral.kernels import variants
from corral.kernels.errors import InvalidRecipe, UnknownRecipe
from corral.kernels.image_probe import content_labels, parse_probe_output
from corral.kernels.recipe import (
    FRAMEWORKS_LABEL, PYTHON_LABEL, RECIPES_DIR, VARIANT_LABEL, list_recipes, load_recipe, recipe_dirs,
)

_BASE = 'name = "b"\ntag = "corral/b:1"\nsuite = "bookworm"\npackages = ["python3", "python3-venv"]\n'
_VARIED = """name = "v"
tag = "corral/v:1-{variant}"
aliases = ["corral/v:1"]
base = "b"
pip = ["six==1.16.0"]

[variants.cpu]
pip = ["torch==2.13.0+cpu"]

[variants.cuda]
pip = ["torch==2.13.0"]
labels = {"x.gpu" = "yes"}
description = "the CUDA build"
"""


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------
# choose_variant: the one function that decides CPU vs CUDA
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("available", "accelerator", "requested", "expected"),
    [
        (("cpu", "cuda"), "cpu", None, "cpu"),
        (("cpu", "cuda"), "cuda", None, "cuda"),
        (("cpu",), "cuda", None, "cpu"),  # a GPU host falls back to the CPU build
        (("cpu", "cuda"), "cpu", "cuda", "cuda"),  # asked for: built anyway
        (("cpu", "cuda"), "cuda", "cpu", "cpu"),
        ((), "cuda", None, None),  # no variants at all
    ],
)
def test_choose_variant(available: tuple[str, ...], accelerator: str, requested: str | None, expected: str) -> None:
    assert variants.choose_variant("r", available, accelerator=accelerator, requested=requested) == expected


def test_a_cuda_only_recipe_is_refused_on_a_cpu_host() -> None:
    with pytest.raises(variants.NoSuitableVariant, match="no variant for a cpu build host.*--variant cuda") as caught:
        variants.choose_variant("r", ("cuda",), accelerator="cpu")
    assert caught.value.available == ("cuda",)


@pytest.mark.parametrize(
    ("available", "requested", "message"),
    [(("cpu",), "cuda", "has no 'cuda' variant \\(it has: cpu\\)"), ((), "cpu", "has no variants")],
)
def test_asking_for_a_missing_variant_is_an_error(available: tuple[str, ...], requested: str, message: str) -> None:
    with pytest.raises(InvalidRecipe, match=message):
        variants.choose_variant("r", available, accelerator="cpu", requested=requested)


def test_the_variant_may_come_from_the_environment() -> None:
    assert variants.requested_variant(None, {}) is None
    assert variants.requested_variant(None, {variants.VARIANT_ENV: "cuda"}) == "cuda"
    assert variants.requested_variant("cpu", {variants.VARIANT_ENV: "cuda"}) == "cpu"


def test_this_host_is_detected_as_what_it_is() -> None:
    has_gpu = variants._nvidia_smi_lists_a_gpu() or variants._nvml_counts_a_gpu()
    assert variants.detect_accelerator() == ("cuda" if has_gpu else "cpu")


def test_nvidia_smi_listing_a_gpu_means_cuda(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-0)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert variants._nvidia_smi_lists_a_gpu(path=str(tmp_path))
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver' >&2\nexit 9\n")
    assert not variants._nvidia_smi_lists_a_gpu(path=str(tmp_path))
    assert not variants._nvidia_smi_lists_a_gpu(path=str(tmp_path / "nothing-here"))


# --------------------------------------------------------------------------
# Recipes with [variants]
# --------------------------------------------------------------------------


def test_a_variant_sets_tag_pip_labels_and_description(tmp_path: Path) -> None:
    _write(tmp_path, "b", _BASE)
    _write(tmp_path, "v", _VARIED)
    cpu = load_recipe("v", tmp_path, accelerator="cpu")
    cuda = load_recipe("v", tmp_path, accelerator="cuda")
    assert (cpu.tag, cpu.aliases, cpu.pip, cpu.variant) == (
        "corral/v:1-cpu", ("corral/v:1",), ("six==1.16.0", "torch==2.13.0+cpu"), "cpu"
    )
    assert (cuda.tag, cuda.pip[-1], cuda.description) == ("corral/v:1-cuda", "torch==2.13.0", "the CUDA build")
    assert cpu.variants == cuda.variants == ("cpu", "cuda")
    assert cpu.image_labels()[VARIANT_LABEL] == "cpu" and "x.gpu" not in cpu.image_labels()
    assert cuda.image_labels()[VARIANT_LABEL] == "cuda" and cuda.image_labels()["x.gpu"] == "yes"
    assert cpu.digest != cuda.digest
    assert load_recipe("v", tmp_path, accelerator="cpu", variant="cuda") == cuda


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_VARIED.replace("[variants.cuda]", "[variants.cuda]\napt = 1"), "variant 'cuda': unknown keys \\['apt'\\]"),
        (_VARIED.replace("[variants.cpu]", "[variants.CPU]"), "variant name 'CPU'"),
        ('name = "v"\ntag = "corral/v:{variant}"\nbase = "b"\n', "uses '\\{variant\\}' but the recipe has no"),
        ('name = "v"\ntag = "corral/v:1"\nbase = "b"\nvariants = ["cpu"]\n', "'variants' must be a table"),
        (_VARIED.replace('pip = ["torch==2.13.0"]', 'pip = ["torch @ https://x/t.whl"]'), "not a pip option"),
    ],
)
def test_invalid_variants_are_rejected(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path, "b", _BASE)
    _write(tmp_path, "v", text)
    with pytest.raises(InvalidRecipe, match=message):
        load_recipe("v", tmp_path, accelerator="cpu")


def test_the_pytorch_recipes() -> None:
    cpu = load_recipe("pytorch-2.13", accelerator="cpu")
    assert (cpu.tag, cpu.aliases, cpu.base, cpu.variant) == (
        "corral/pytorch:2.13-cpu", ("corral/pytorch:2.13", "corral/pytorch:latest"), "python", "cpu"
    )
    assert cpu.pip == ("numpy==2.4.6", "torch==2.13.0+cpu")  # exact pins: an open range would pull the CUDA build
    cuda = load_recipe("pytorch-2.13", accelerator="cuda")
    assert (cuda.tag, cuda.pip) == ("corral/pytorch:2.13-cuda", ("numpy==2.4.6", "torch==2.13.0"))
    assert cpu.labels["ai.corral.services"] == "sshd:tcp:2200"
    newer = load_recipe("pytorch-2.14", accelerator="cuda")
    assert (newer.tag, newer.pip, newer.variant) == ("corral/pytorch:2.14-cuda", ("torch==2.14.1",), "cuda")
    assert len({cpu.tag, cuda.tag, newer.tag, *cpu.aliases, *newer.aliases}) == 6  # versions live side by side
    with pytest.raises(variants.NoSuitableVariant):  # never built by itself on a host without a GPU
        load_recipe("pytorch-2.14", accelerator="cpu")
    for recipe in (cpu, cuda, newer):
        assert all("==" in requirement for requirement in recipe.pip)
    # The python recipe stays small: the frameworks come in layers on top of it.
    assert "python3-pip" not in load_recipe("python").packages


def test_listing_shows_a_recipe_without_a_variant_for_this_host_as_its_first_variant() -> None:
    recipes = {recipe.name: recipe for recipe in list_recipes(accelerator="cpu")}
    assert recipes["pytorch-2.13"].variant == "cpu" and recipes["pytorch-2.14"].variant == "cuda"
    assert {"python", "jupyter", "pytorch-2.13", "pytorch-2.14"} <= set(recipes)


# --------------------------------------------------------------------------
# Users' recipes: directories and files
# --------------------------------------------------------------------------


def test_recipe_dirs_order(tmp_path: Path) -> None:
    environ = {"CORRAL_RECIPES_DIR": f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}", "XDG_CONFIG_HOME": str(tmp_path)}
    assert recipe_dirs(environ) == [tmp_path / "a", tmp_path / "b", tmp_path / "corral" / "recipes", RECIPES_DIR]
    assert recipe_dirs({"HOME": str(tmp_path)}) == [tmp_path / ".config" / "corral" / "recipes", RECIPES_DIR]


def test_recipes_in_user_directories_are_found_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_home = tmp_path / "config"
    extra = tmp_path / "extra"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    monkeypatch.setenv("CORRAL_RECIPES_DIR", str(extra))
    user_dir = config_home / "corral" / "recipes"
    # A user recipe on the shipped python recipe (the base is found in the shipped directory).
    _write(user_dir, "mine", 'name = "mine"\ntag = "corral/mine:1"\nbase = "python"\npip = ["six==1.16.0"]\n')
    mine = load_recipe("mine")
    assert mine.base == "python" and mine.resolved_base() == load_recipe("python", RECIPES_DIR)
    # $CORRAL_RECIPES_DIR comes first and may shadow the shipped recipes.
    _write(extra, "jupyter", 'name = "jupyter"\ntag = "corral/my-jupyter:1"\nbase = "mine"\n')
    shadowing = load_recipe("jupyter")
    assert shadowing.tag == "corral/my-jupyter:1" and shadowing.resolved_base() == mine
    assert {"mine", "jupyter", "python"} <= {recipe.name for recipe in list_recipes(None)}
    assert next(r for r in list_recipes(None) if r.name == "jupyter").tag == "corral/my-jupyter:1"
    with pytest.raises(UnknownRecipe, match="known: .*mine"):
        load_recipe("nope")


def test_a_recipe_file_by_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("CORRAL_RECIPES_DIR", raising=False)
    path = _write(tmp_path / "proj", "my-recipe", 'name = "my-recipe"\ntag = "corral/my:1"\nbase = "python"\n')
    monkeypatch.chdir(tmp_path / "proj")
    for spelling in ("./my-recipe.toml", "my-recipe.toml", str(path), path):
        recipe = load_recipe(spelling)
        assert recipe.name == "my-recipe" and recipe.path is not None and recipe.base == "python"
    # Next to the file first: a base there wins over the shipped one.
    _write(tmp_path / "proj", "python", _BASE.replace('"b"', '"python"').replace("corral/b:1", "corral/local-py:1"))
    assert load_recipe("./my-recipe.toml").resolved_base().tag == "corral/local-py:1"
    with pytest.raises(UnknownRecipe, match="no recipe file 'missing.toml'"):
        load_recipe("./missing.toml")
    (tmp_path / "proj" / "bad.toml").write_text("name = [")
    with pytest.raises(InvalidRecipe, match="bad.toml"):
        load_recipe("./bad.toml")


# --------------------------------------------------------------------------
# The content probe's answer → labels
# --------------------------------------------------------------------------


def test_probe_output_becomes_labels() -> None:
    lines = ["some noise", 'CORRAL-PROBE {"python": "3.11.2", "frameworks": ["torch 2.13.0+cpu", "jax 0.4.30"]}']
    assert content_labels(parse_probe_output(lines)) == {
        PYTHON_LABEL: "3.11.2", FRAMEWORKS_LABEL: "torch 2.13.0+cpu, jax 0.4.30"
    }
    assert content_labels(parse_probe_output(["CORRAL-PROBE {broken"])) == {PYTHON_LABEL: "", FRAMEWORKS_LABEL: ""}
    assert parse_probe_output(["sh: python3: not found"]) is None
    assert content_labels({"python": "3.12.1", "frameworks": []})[FRAMEWORKS_LABEL] == ""
