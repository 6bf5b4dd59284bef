"""``corral image …``: list the cluster's images, build one locally."""
from __future__ import annotations

import inspect
from typing import Any

import click
from rich.markup import escape
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
from .render import image_table

DEFAULT_RECIPE = "python"


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
        console().print(image_table(images))


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
@click.argument("recipe", required=False, default=DEFAULT_RECIPE)
@click.option("--tag", default=None, help="Image tag (default: the recipe's).")
@click.option("--force", is_flag=True, help="Rebuild even if the image exists.")
def build_command(recipe: str, tag: str | None, force: bool) -> None:
    """Build an image from RECIPE on this machine's Docker daemon (default: python)."""
    try:
        from corral.kernels.builder import build_image  # heavy, server-side: import only here
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
        result = build_image(recipe, tag=tag, progress=display, force=force)
        if inspect.isawaitable(result):
            result = run_async(_await(result))
        display.close()
    click.echo(describe_built(result, recipe))


async def _await(awaitable: Any) -> Any:
    return await awaitable
