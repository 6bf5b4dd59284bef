"""``corral whoami``, ``corral health``, ``corral config show`` and ``corral config set``."""
from __future__ import annotations

import os

import click
from rich.table import Table

from ..config import (
    ENV_ACCESS_KEY,
    ENV_ENDPOINT,
    ENV_SECRET_KEY,
    ClientConfig,
    default_config_path,
    normalize_endpoint,
    resolve_client_settings,
    write_client_config,
)
from ..models import Health, WhoAmI
from .context import cli_state, run_async
from .exit_codes import AUTH_OR_CONFIG
from .output import console, print_json
from .options import json_option


@click.command("whoami")
@json_option
def whoami_command(as_json: bool) -> None:
    """The user and role behind the configured access key."""
    client = cli_state().client()

    async def fetch() -> WhoAmI:
        async with client:
            return await client.whoami()

    me = run_async(fetch())
    if as_json:
        print_json(me.raw)
    else:
        click.echo(f"{me.username} ({me.role}) user {me.user_id}, access key {me.access_key}")


@click.command("health")
@json_option
def health_command(as_json: bool) -> None:
    """Check that the manager answers (no credentials needed)."""
    client = cli_state().client(require_credentials=False)

    async def fetch() -> Health:
        async with client:
            return await client.health()

    health = run_async(fetch())
    if as_json:
        print_json(health.raw)
    else:
        click.echo(f"{client.endpoint}: {health.status} (manager {health.version})")


@click.group("config")
def config_group() -> None:
    """Client configuration (~/.config/corral/client.toml, or $CORRAL_CONFIG)."""


CONFIG_KEYS = ("endpoint", "access_key", "secret_key")


@config_group.command("set")
@click.argument("key", type=click.Choice([*CONFIG_KEYS, "access-key", "secret-key"]))
@click.argument("value")
def set_command(key: str, value: str) -> None:
    """Set one value in the client config file (endpoint, access_key or secret_key).

    The keys are not checked here; `corral login` checks them before saving.
    """
    key = key.replace("-", "_")
    path = default_config_path()
    current = dict(resolve_client_settings(path, environ={}).values)  # the file alone
    value = value.strip()
    if not value:
        raise click.BadParameter("must not be empty", param_hint="VALUE")
    current[key] = normalize_endpoint(value) if key == "endpoint" else value
    written = write_client_config(path, ClientConfig(**{k: current.get(k, "") for k in CONFIG_KEYS}))
    shown = _mask(current[key]) if key == "secret_key" else current[key]
    click.echo(f"{key} = {shown} (saved in {written})")
    env_name = {"endpoint": ENV_ENDPOINT, "access_key": ENV_ACCESS_KEY, "secret_key": ENV_SECRET_KEY}[key]
    if cli_state().endpoint and key == "endpoint":
        click.echo("note: --endpoint overrides it for this command line", err=True)
    if os.environ.get(env_name):
        click.echo(f"note: {env_name} in the environment overrides it", err=True)


def _mask(secret: str) -> str:
    if not secret:
        return ""
    return secret[:4] + "…" if len(secret) > 8 else "****"


@config_group.command("show")
@json_option
def show_command(as_json: bool) -> None:
    """Where the client sends requests, with which key, and where each value came from.

    Exits 3 when the endpoint or the keypair is missing.
    """
    settings = resolve_client_settings(endpoint=cli_state().endpoint)
    values = dict(settings.values)
    if values.get("secret_key"):
        values["secret_key"] = _mask(values["secret_key"])
    if values.get("endpoint"):
        values["endpoint"] = normalize_endpoint(values["endpoint"])
    complete = all(values.get(key) for key in ("endpoint", "access_key", "secret_key"))
    if as_json:
        print_json({"config_file": str(settings.path), **values, "origin": dict(settings.origin)})
    else:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_column(style="dim")
        table.add_row("config file", str(settings.path), "" if settings.path.exists() else "(absent)")
        env_names = {"endpoint": ENV_ENDPOINT, "access_key": ENV_ACCESS_KEY, "secret_key": ENV_SECRET_KEY}
        for key, env_name in env_names.items():
            table.add_row(key, values.get(key) or f"(not set: {env_name})", settings.origin.get(key, ""))
        console().print(table)
    if not complete:
        click.get_current_context().exit(AUTH_OR_CONFIG)
