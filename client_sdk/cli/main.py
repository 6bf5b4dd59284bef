"""The ``corral`` command: global options, error handling and exit statuses."""
from __future__ import annotations

import traceback
from importlib import metadata
from typing import Any

import click

from corral.common.errors import AuthenticationFailed, CorralError

from .account_cmd import config_group, health_command, whoami_command
from .admin_cmd import admin_group
from .context import CliState
from .exec_cmd import exec_command
from .exit_codes import EPILOG, INTERRUPTED, exit_code_for
from .image_cmd import image_group
from .project_cmd import project_group
from .run_cmd import run_command
from .server_cmd import agent_group, manager_group, storage_group, up_command
from .session_cmd import session_group
from .terminal_cmd import terminal_command
from .app_cmd import app_command
from .ssh_cmd import ssh_command, ssh_config_command, ssh_proxy_command, vscode_command
from .ssh_key_cmd import ssh_key_group
from .vfolder_cmd import vfolder_group


def _version() -> str:
    try:
        return metadata.version("corral")
    except metadata.PackageNotFoundError:
        return "unknown"


def error_line(error: BaseException) -> str:
    if isinstance(error, AuthenticationFailed):
        return f"error: authentication failed: {error}"
    if isinstance(error, CorralError):
        return f"error: {error}"
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"error: {error.strerror}{where}"
    return f"error: {type(error).__name__}: {error}"


class CorralGroup(click.Group):
    """Turns any error below into one ``error: …`` line on stderr and its exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            ctx.exit(INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
            state = ctx.find_object(CliState)
            if state is not None and state.verbose:
                traceback.print_exc()
            click.echo(error_line(exc), err=True)
            ctx.exit(exit_code_for(exc))


@click.group(cls=CorralGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--endpoint", default=None, metavar="URL", help="Manager URL (overrides config and CORRAL_ENDPOINT)."
)
@click.option("-v", "--verbose", count=True, help="More progress on stderr; tracebacks on errors.")
@click.version_option(_version(), "--version", prog_name="corral")
@click.pass_context
def main(ctx: click.Context, endpoint: str | None, verbose: int) -> None:
    """Corral: run code on GPU sessions."""
    ctx.obj = CliState(endpoint=endpoint, verbose=verbose)


for command in (
    run_command,
    exec_command,
    terminal_command,
    app_command,
    ssh_command,
    ssh_config_command,
    ssh_proxy_command,
    vscode_command,
    ssh_key_group,
    session_group,
    vfolder_group,
    project_group,
    image_group,
    admin_group,
    whoami_command,
    health_command,
    config_group,
    up_command,
    manager_group,
    agent_group,
    storage_group,
):
    main.add_command(command)


if __name__ == "__main__":
    main()
