"""The ``corral`` command: global options, error handling and exit statuses."""
from __future__ import annotations

import traceback
from importlib import import_module, metadata
from typing import Any

import click

from corral.common.errors import AuthenticationFailed, CorralError

from .context import CliState
from .exit_codes import EPILOG, INTERRUPTED, exit_code_for

# Each command's module is imported when that command runs (or --help lists it), so `corral X`
# pays only for what X needs: name -> (module under corral.client.cli, attribute).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run_cmd", "run_command"),
    "exec": ("exec_cmd", "exec_command"),
    "interrupt": ("interrupt_cmd", "interrupt_command"),
    "terminal": ("terminal_cmd", "terminal_command"),
    "app": ("app_cmd", "app_command"),
    "ssh": ("ssh_cmd", "ssh_command"),
    "ssh-config": ("ssh_cmd", "ssh_config_command"),
    "ssh-proxy": ("ssh_cmd", "ssh_proxy_command"),
    "vscode": ("ssh_cmd", "vscode_command"),
    "ssh-key": ("ssh_key_cmd", "ssh_key_group"),
    "session": ("session_cmd", "session_group"),
    "vfolder": ("vfolder_cmd", "vfolder_group"),
    "project": ("project_cmd", "project_group"),
    "image": ("image_cmd", "image_group"),
    "admin": ("admin_cmd", "admin_group"),
    "groups": ("resource_group_cmd", "groups_command"),
    "queue": ("queue_cmd", "queue_command"),
    "usage": ("usage_cmd", "usage_command"),
    "login": ("login_cmd", "login_command"),
    "passwd": ("passwd_cmd", "passwd_command"),
    "whoami": ("account_cmd", "whoami_command"),
    "health": ("account_cmd", "health_command"),
    "config": ("account_cmd", "config_group"),
    "up": ("server_cmd", "up_command"),
    "manager": ("server_cmd", "manager_group"),
    "agent": ("server_cmd", "agent_group"),
    "storage": ("server_cmd", "storage_group"),
}


def _version() -> str:
    try:
        return metadata.version("corral")
    except metadata.PackageNotFoundError:
        return "unknown"


def _print_version(ctx: click.Context) -> None:
    click.echo(f"corral, version {_version()}")  # looked up only when asked (importlib.metadata is slow)
    ctx.exit(0)


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
    """Turns any error below into one ``error: …`` line on stderr and its exit status; loads each
    command's module on first use (``LAZY_COMMANDS``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in LAZY_COMMANDS:
            module_name, attribute = LAZY_COMMANDS[name]
            command = getattr(import_module(f"{__package__}.{module_name}"), attribute)
            self.add_command(command, name)
        return command

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
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, help="Show the version and exit.",
              callback=lambda ctx, _, value: _print_version(ctx) if value else None)
@click.pass_context
def main(ctx: click.Context, endpoint: str | None, verbose: int) -> None:
    """Corral: run code on GPU sessions."""
    ctx.obj = CliState(endpoint=endpoint, verbose=verbose)


# Commands added here are imported with this module (prefer LAZY_COMMANDS).
for command in ():
    main.add_command(command)


if __name__ == "__main__":
    main()
