"""``corral image …``: list the cluster's images, build one locally."""
from __future__ import annotations

import inspect
from typing import Any

import click
from rich.markup import escape
from rich.table import Table
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from corral.common.errors import ConfigError
from corral.common.slots import format_size

from ..models import Image
from .context import cli_state, run_async
from .output import console, print_json
from .options import json_option

DEFAULT_RECIPE = "python"
VARIANTS = ("cpu", "cuda")


@click.group("image")
def image_group() -> None:
    """List and build images."""


@image_group.command("ls")
@json_option
def ls_command(as_json: bool) -> None:
    """Images known to the cluster's agents."""
    client = cli_state().client()

    async def fetch() -> list[Image]:
        async with client:
            return await client.list_images()

    images = run_async(fetch())
    if as_json:
        print_json([i.raw for i in images])
    elif not images:
        click.echo("no images", err=True)
    else:
        console().print(image_contents_table(images))


def image_contents(image: Image) -> tuple[str, list[str], list[str]]:
    """Python version, frameworks and service names, from the labels the image builder stamps
    (``ai.corral.python``, ``ai.corral.frameworks``, ``ai.corral.services``); empty when absent."""
    labels = image.labels or {}
    python = labels.get("ai.corral.python") or ""
    frameworks = [item.strip() for item in labels.get("ai.corral.frameworks", "").split(",") if item.strip()]
    entries = labels.get("ai.corral.services", "").split(",")
    services = [entry.split(":", 1)[0].strip() for entry in entries if entry.strip()]
    return python, frameworks, services


def image_contents_table(images: list[Image]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "ID", "SIZE", "PYTHON", "FRAMEWORKS", "SERVICES", "AGENTS"):
        table.add_column(column, no_wrap=column in ("NAME", "ID", "SIZE", "PYTHON"))
    for image in images:
        python, frameworks, services = image_contents(image)
        table.add_row(
            escape(image.name),
            image.image_id.removeprefix("sha256:")[:12] or "-",
            "-" if image.size is None else format_size(image.size),
            python or "-",
            escape(", ".join(frameworks)) or "-",
            escape(", ".join(services)) or "-",
            ", ".join(image.agents) or "-",
        )
    return table


class BuildProgressDisplay:
    """Turns the builder's ``BuildProgress`` callbacks into one rich progress row per stage."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}
        self._current: str | None = None

    def __call__(self, update: Any) -> None:
        stage = str(getattr(update, "stage", "") or "build")
        message = str(getattr(update, "message", "") or "")
        done = getattr(update, "done", None)
        total = getattr(update, "total", None)
        if getattr(update, "unit", None) == "bytes":
            # Streamed bytes have no known total: show the amount, not a bar.
            message = f"{(done or 0) / 1e6:.1f} MB {message}".rstrip()
            done = total = None
        if self._current is not None and self._current != stage:
            self._finish(self._current)
        self._current = stage
        description = f"[bold]{stage}[/] {escape(message)}".rstrip()
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(description, total=total, completed=done or 0)
        else:
            self._progress.update(self._tasks[stage], description=description, total=total, completed=done or 0)

    def _finish(self, stage: str) -> None:
        task_id = self._tasks[stage]
        task = self._progress.tasks[task_id]
        self._progress.update(task_id, total=task.total or 1, completed=task.total or 1)

    def close(self) -> None:
        if self._current is not None:
            self._finish(self._current)


def describe_built(result: Any, recipe: str) -> str:
    """One closing line from the builder's ``BuiltImage`` (or whatever it returned)."""
    tag = getattr(result, "tag", None) or (result if isinstance(result, str) else None) or recipe
    if getattr(result, "reused", False):
        return f"{tag} already exists (use --force to rebuild)"
    details = []
    image_id = getattr(result, "image_id", None)
    if image_id:
        details.append(str(image_id).removeprefix("sha256:")[:12])
    size = getattr(result, "size_bytes", None)
    if isinstance(size, int):
        details.append(format_size(size))
    seconds = getattr(result, "seconds", None)
    if isinstance(seconds, (int, float)):
        details.append(f"{seconds:.1f} s")
    return f"built {tag}" + (f" ({', '.join(details)})" if details else "")


@image_group.command("build")
@click.argument("recipe", required=False, default=None)
@click.option("--tag", default=None, help="Image tag (default: the recipe's).")
@click.option("--force", is_flag=True, help="Rebuild even if the image exists.")
@click.option("--variant", type=click.Choice(VARIANTS), default=None,
              help="Variant of a recipe with variants (default: cuda on a GPU host, else cpu).")
@click.option("--dockerfile", "dockerfile", default=None, metavar="PATH",
              help="Build this Dockerfile (context: its directory) instead of a recipe.")
def build_command(recipe: str | None, tag: str | None, force: bool, variant: str | None,
                  dockerfile: str | None) -> None:
    """Build an image on this machine's Docker daemon from RECIPE (default: python).

    RECIPE is a recipe name (looked up in $CORRAL_RECIPES_DIR, ~/.config/corral/recipes,
    then the shipped recipes) or a path to a recipe file (./my-recipe.toml).
    """
    if dockerfile is not None and recipe is not None:
        raise ConfigError("give either a RECIPE or --dockerfile PATH, not both")
    if dockerfile is not None and (force or variant):
        raise ConfigError("--force and --variant apply to recipes, not to --dockerfile builds")
    try:
        if dockerfile is not None:  # heavy, server-side: import only here
            from corral.kernels.dockerfile_build import build_dockerfile
        else:
            from corral.kernels.builder import build_image
    except ImportError as exc:
        raise ConfigError(
            f"the image builder is not available ({exc}); install the server extra: pip install 'corral[server]'"
        ) from None
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(),
        transient=False,
    ) as progress:
        display = BuildProgressDisplay(progress)
        if dockerfile is not None:
            result = build_dockerfile(dockerfile, tag=tag, progress=display)
        else:
            extra = {"variant": variant} if variant else {}
            result = build_image(recipe or DEFAULT_RECIPE, tag=tag, progress=display, force=force, **extra)
        if inspect.isawaitable(result):
            result = run_async(_await(result))
        display.close()
    click.echo(describe_built(result, dockerfile or recipe or DEFAULT_RECIPE))


async def _await(awaitable: Any) -> Any:
    return await awaitable
