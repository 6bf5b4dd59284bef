"""Options several commands share, and parsing of their values."""
from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from corral.common.cluster import CLUSTER_MODES, MAX_CLUSTER_SIZE
from corral.common.errors import InvalidRequest

from ..resources import build_resources

F = Callable[..., Any]


def _check_cpu(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a number of cores") from None
    if not amount.is_finite() or amount <= 0:
        raise click.BadParameter("must be a positive number of cores")
    return value


def _check_mem(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        build_resources(mem=value)
    except InvalidRequest as exc:
        raise click.BadParameter(exc.detail) from None
    return value


def _check_share(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        build_resources(gpu_share=value)
    except InvalidRequest as exc:
        raise click.BadParameter(exc.detail) from None
    return value


def _check_env(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in value:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        env[key] = val
    return env


def session_spec_options(func: F) -> F:
    """--image, resources, --env and --mount: what a new session is made of."""
    decorators = [
        click.option("--image", "-i", default=None, help="Image to run (server default: corral/python:latest)."),
        click.option("--cpu", callback=_check_cpu, default=None, help="CPU cores, e.g. 2 or 0.5."),
        click.option("--mem", callback=_check_mem, default=None, help="Memory, e.g. 512m or 4g."),
        click.option("--gpus", type=click.IntRange(min=0), default=None, help="Whole GPUs."),
        click.option("--gpu-share", callback=_check_share, default=None, help="Fraction of one GPU, e.g. 0.25."),
        click.option(
            "--env", "-e", "env", multiple=True, callback=_check_env, metavar="KEY=VALUE",
            help="Environment variable (repeatable).",
        ),
        click.option(
            "--mount", "mounts", multiple=True, metavar="NAME[:PATH][:ro]",
            help="Mount a vfolder (repeatable).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def placement_options(func: F) -> F:
    """--group, --project and --priority: where a new session runs and what it counts against."""
    decorators = [
        click.option("--group", "group", default=None, metavar="GROUP",
                     help="Resource group to run in (default: yours, else `default`; see `corral groups`)."),
        click.option("--project", "project", default=None, metavar="PROJECT",
                     help="Project it counts against, one you are a member of (default: yours, if set)."),
        click.option("--priority", type=click.IntRange(0, 100), default=None,
                     help="0-100 (default 50); above 50 for admins only."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def cluster_options(func: F) -> F:
    """--cluster-size and --cluster-mode: a session of several kernels (main1, sub1 …)."""
    decorators = [
        click.option("--cluster-size", type=click.IntRange(1, MAX_CLUSTER_SIZE), default=1, show_default=True,
                     help="Kernels in the session (main1, sub1 …), each with the resources asked for."),
        click.option("--cluster-mode", type=click.Choice(list(CLUSTER_MODES)), default="single-node",
                     show_default=True, help="single-node: all kernels on one node; multi-node: one per node."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def resources_from_options(
    cpu: str | None, mem: str | None, gpus: int | None, gpu_share: str | None
) -> dict[str, str | int]:
    if gpus and gpu_share is not None:
        raise click.UsageError("use --gpus or --gpu-share, not both")
    try:
        return build_resources(cpu=cpu, mem=mem, gpus=gpus, gpu_share=gpu_share)
    except InvalidRequest as exc:
        raise click.UsageError(exc.detail) from None


def read_code(code: str) -> str:
    """CODE as given, ``-`` for stdin, ``@path`` for a file's contents."""
    if code == "-":
        return sys.stdin.read()
    if code.startswith("@") and len(code) > 1:
        path = Path(code[1:]).expanduser()
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="CODE") from None
    return code


json_option = click.option("--json", "as_json", is_flag=True, help="Print the raw JSON and nothing else.")
