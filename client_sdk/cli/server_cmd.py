"""Commands that run server processes in the foreground.

They are thin: the server code lives in other packages (the ``server``
extra), imported only when one of these commands runs, so the client alone
stays light.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

import click

from corral.common.config import default_data_dir
from corral.common.errors import ConfigError

from .data_dir_lock import hold_data_dir
from .startup_errors import run_with_readable_errors

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def _launcher(module: str, function: str, what: str) -> Callable[..., Any]:
    try:
        return getattr(importlib.import_module(module), function)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        if missing.startswith("corral."):
            raise ConfigError(f"cannot start the {what}: this installation has no {missing}") from None
        raise ConfigError(
            f"cannot start the {what}: {missing} is not installed; install the server extra "
            f"(pip install 'corral[server]')"
        ) from None
    except AttributeError:
        raise ConfigError(f"cannot start the {what}: {module}.{function} does not exist in this version") from None


# The embedded composition root imports every server package; it lives with
# the client (corral.client.embedded_stack) but older layouts had it in the
# manager's launcher, so either is accepted.
EMBEDDED_LAUNCHERS = ("corral.client.embedded_stack", "corral.manager.launcher")


def _embedded_launcher() -> Callable[..., Any]:
    first_error: ConfigError | None = None
    for module in EMBEDDED_LAUNCHERS:
        try:
            return _launcher(module, "run_embedded", "embedded stack")
        except ConfigError as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


_existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)


def _mock_gpus(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    """``FILE`` or ``TOPO,CSV``: each must exist; handed on as absolute paths (the comma form kept)."""
    if value is None:
        return None
    whole = Path(value)
    parts = [whole] if whole.exists() or "," not in value else [Path(p) for p in value.split(",", 1)]
    for part in parts:
        if not part.is_file():
            raise click.BadParameter(f"{part}: no such file", ctx=ctx, param=param)
    return Path(",".join(str(p.resolve()) for p in parts))


@click.command("up")
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="State directory (SQLite DB, vfolders, keys). Default: ~/.local/share/corral.",
)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address the API listens on.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True, help="API port.")
@click.option(
    "--mock-gpus", metavar="FILE[,CSV]", callback=_mock_gpus, default=None,
    help="Pretend to have the GPUs in FILE: a configs/gpus/*.toml, or `nvidia-smi topo -m > topo.txt` output; "
         "models/memory/UUIDs from `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv > topo.csv` "
         "saved beside it (topo.csv or gpus.csv) or named after a comma.",
)
def up_command(data_dir: Path | None, host: str, port: int, mock_gpus: Path | None) -> None:
    """Run manager + agent + storage proxy in the foreground (embedded, SQLite).

    Writes an admin keypair and the client config on first start. Ctrl-C stops
    everything. One `corral up` per data dir: a second one is refused.
    """
    run_embedded = _embedded_launcher()
    with hold_data_dir((data_dir or default_data_dir()).resolve()):
        run_embedded(data_dir=data_dir, host=host, port=port, mock_gpus=mock_gpus)


def _no_database(config_path: Path) -> str | None:
    return None


def _manager_db_url(config_path: Path) -> str | None:
    try:
        from corral.manager.config import load_manager_config

        return load_manager_config(config_path).db.url
    except Exception:  # noqa: BLE001 - only used to word an error; the launcher reports bad config
        return None


def _start_group(
    name: str, module: str, function: str, what: str, db_url: Callable[[Path], str | None] = _no_database
) -> click.Group:
    @click.group(name, help=f"Run the {what} server process.")
    def group() -> None:
        pass

    @group.command("start")
    @click.option("--config", "config_path", type=_existing_file, required=True, help="TOML config file.")
    def start(config_path: Path) -> None:
        launch = _launcher(module, function, what)
        run_with_readable_errors(lambda: launch(config_path), db_url=lambda: db_url(config_path))

    article = "an" if what[:1].lower() in "aeiou" else "a"  # "an agent", "a manager"
    start.help = f"Run {article} {what} in the foreground from a TOML config (Ctrl-C stops it)."
    return group


manager_group = _start_group("manager", "corral.manager.launcher", "run_manager", "manager", _manager_db_url)
agent_group = _start_group("agent", "corral.agent.launcher", "run_agent", "agent")
storage_group = _start_group("storage", "corral.storage_proxy.server", "run_from_config_file", "storage proxy")
