"""``corral login``: point this client at a manager with a keypair an admin gave you."""
from __future__ import annotations

import os
import re
import sys

import click

from corral.common.errors import ConfigError

from ..api import AsyncCorralClient
from ..config import (
    ENV_ACCESS_KEY,
    ENV_CONFIG_PATH,
    ENV_ENDPOINT,
    ENV_SECRET_KEY,
    ClientConfig,
    default_config_path,
    normalize_endpoint,
    resolve_client_settings,
    write_client_config,
)
from ..models import WhoAmI
from .context import cli_state, note, run_async
from .options import json_option
from .output import print_json

_KEY_LINE = re.compile(r"^\s*(?:export\s+)?(CORRAL_ACCESS_KEY|CORRAL_SECRET_KEY)\s*=\s*['\"]?([^'\"\s]+)['\"]?\s*$")


@click.command("login")
@click.argument("endpoint", required=False, metavar="[ENDPOINT]")
@click.option("--access-key", default=None, metavar="KEY", help="Your access key (AK…).")
@click.option(
    "--secret-key", default=None, metavar="KEY",
    help="Your secret key. Leave it out to be asked for it (hidden), or pipe it in on stdin.",
)
@json_option
def login_command(endpoint: str | None, access_key: str | None, secret_key: str | None, as_json: bool) -> None:
    """Log in to a Corral manager: check the keypair, then save it in the client config.

    ENDPOINT is the manager's URL (default: --endpoint, else the configured
    one). Keys an admin made with `corral admin user create` come as options,
    as prompts, or on stdin: `KEY SECRET`, one per line, or the
    `CORRAL_ACCESS_KEY=…` / `CORRAL_SECRET_KEY=…` lines that command prints.
    Nothing is written unless the manager accepts the keys (`whoami`).
    """
    path = default_config_path()
    target = endpoint or cli_state().endpoint or _configured_endpoint(path)
    if not target:
        if not _interactive():
            raise click.UsageError("give the manager's ENDPOINT, e.g. `corral login http://corral.example:8090`")
        target = click.prompt("Manager endpoint (URL)", err=True).strip()
    target = normalize_endpoint(target)
    if not (access_key and secret_key):
        access_key, secret_key = _read_keys(access_key, secret_key)
    config = ClientConfig(endpoint=target, access_key=access_key.strip(), secret_key=secret_key.strip())

    async def check() -> WhoAmI:
        async with AsyncCorralClient(config) as client:
            return await client.whoami()

    me = run_async(check())
    written = write_client_config(path, config)
    if as_json:
        print_json({"endpoint": target, "config_file": str(written), **me.raw})
    else:
        click.echo(f"logged in to {target} as {me.username} ({me.role}); saved in {written}")
    overriding = [name for name in (ENV_ENDPOINT, ENV_ACCESS_KEY, ENV_SECRET_KEY) if os.environ.get(name)]
    if overriding:
        note(f"note: {', '.join(overriding)} in the environment override{'s' if len(overriding) == 1 else ''} "
             f"what was saved; unset {'it' if len(overriding) == 1 else 'them'} to use this login")


def _configured_endpoint(path: object) -> str | None:
    try:
        return resolve_client_settings(path, environ={}).values.get("endpoint")  # type: ignore[arg-type]
    except ConfigError:
        return None  # a corrupt file is replaced by this login


def _interactive() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _read_keys(access_key: str | None, secret_key: str | None) -> tuple[str, str]:
    if _interactive():
        access_key = access_key or click.prompt("Access key", err=True).strip()
        secret_key = secret_key or click.prompt("Secret key", hide_input=True, err=True).strip()
        return access_key, secret_key
    words: list[str] = []
    named: dict[str, str] = {}
    for line in sys.stdin.read().splitlines():
        match = _KEY_LINE.match(line)
        if match:
            named[match.group(1)] = match.group(2)
        elif line.strip() and not line.lstrip().startswith("#"):
            words.extend(line.split())
    if access_key is None:
        access_key = named.get(ENV_ACCESS_KEY) or (words.pop(0) if words else None)
    secret_key = secret_key or named.get(ENV_SECRET_KEY) or (words.pop(0) if words else None)
    if not access_key or not secret_key:
        raise ConfigError(
            "corral login needs an access key and a secret key: give --access-key/--secret-key, answer the "
            f"prompts, or pipe them in on stdin (e.g. `{ENV_ACCESS_KEY}=…` and `{ENV_SECRET_KEY}=…` lines); "
            f"{ENV_CONFIG_PATH} chooses where they are saved"
        )
    return access_key, secret_key
