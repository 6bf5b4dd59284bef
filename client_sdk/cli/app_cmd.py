"""``corral app SESSION SERVICE``: a session's service on a local port (or a one-time browser link)."""
from __future__ import annotations

import socket
import webbrowser

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from corral.common.errors import InvalidRequest, NotFound, SessionServiceFailed

from ..api import AsyncCorralClient
from ..models import SessionService
from ..tunnel import serve_local
from .context import cli_state, note, run_async
from .options import json_option
from .output import console, print_json

READY_WAIT_S = 300.0
LOG_LINES = 8  # of a failed service's log tail, shown before the error
STATE_STYLES = {"ready": "green", "starting": "yellow", "failed": "red", "stopped": "dim"}


def _bind(value: str | None) -> tuple[str, int | None]:
    if value is None:
        return "127.0.0.1", None
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter("give HOST:PORT or PORT, e.g. 127.0.0.1:8888", param_hint="-b/--bind")
    return host.strip("[]") or "127.0.0.1", int(port)


@click.command("app")
@click.argument("session_ref", metavar="SESSION")
@click.argument("service_name", metavar="[SERVICE]", required=False)
@click.option("-b", "--bind", "bind", default=None, metavar="[HOST:]PORT",
              help="Where to listen (default 127.0.0.1 and the service's own port, or any free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the app in a web browser too.")
@click.option("--link", is_flag=True,
              help="Print a one-time link through the manager's proxy instead of listening locally.")
@json_option
def app_command(
    session_ref: str, service_name: str | None, bind: str | None, open_browser: bool, link: bool, as_json: bool,
) -> None:
    """Reach SERVICE of SESSION (e.g. jupyterlab) on a local port until Ctrl-C; prints the URL.
    Without SERVICE, lists the session's services and their states.

    The service starts if it is not running yet; nothing is published on the session's node."""
    client = cli_state().client()
    if service_name is None:
        _list(client, session_ref, as_json)
        return
    host, port = _bind(bind)
    run_async(_app(client, session_ref, service_name, host, port, open_browser, link))


async def _app(
    client: AsyncCorralClient, ref: str, name: str, host: str, port: int | None, open_browser: bool, link: bool,
) -> None:
    async with client:
        service = await _started(client, ref, name)
        if link:
            if service.protocol != "http":
                raise InvalidRequest(f"{name} speaks {service.protocol}: only http services have browser links")
            url = await client.app_url(ref, name)
            click.echo(url)
            if open_browser:
                webbrowser.open(url)
            return
        listen_port = port if port is not None else _free_or_any(host, service.port)
        server = await serve_local(lambda: client.open_tunnel(ref, name), host, listen_port)
        bound = server.sockets[0].getsockname()
        where = f"{'[' + bound[0] + ']' if ':' in bound[0] else bound[0]}:{bound[1]}"
        url = f"http://{where}{service.http_path or '/'}" if service.protocol == "http" else where
        click.echo(url)
        note(f"{name} of {ref} is on {where}; Ctrl-C stops the tunnel (the session keeps running)")
        if open_browser and service.protocol == "http":
            webbrowser.open(url)
        async with server:
            await server.serve_forever()


def _list(client: AsyncCorralClient, ref: str, as_json: bool) -> None:
    async def fetch() -> list[SessionService]:
        async with client:
            return await client.services(ref)

    services = run_async(fetch())
    if as_json:
        print_json([service.to_json() for service in services])
        return
    table = Table(box=None, header_style="bold")
    for column in ("SERVICE", "PROTOCOL", "PORT", "STATE", "NOTE"):
        table.add_column(column)
    for service in services:
        detail = service.error if service.state == "failed" else service.http_path
        table.add_row(service.name, service.protocol, str(service.port or ""),
                      Text(service.state, style=STATE_STYLES.get(service.state, "")), escape(detail or ""))
    console().print(table)


async def _started(client: AsyncCorralClient, ref: str, name: str) -> SessionService:
    services = {service.name: service for service in await client.services(ref)}
    service = services.get(name)
    if service is None:
        raise NotFound(f"session {ref} has no service {name!r} (it has: {', '.join(sorted(services))})")
    if service.protocol == "pty":
        raise InvalidRequest("the terminal is not a port: use `corral terminal`")
    if service.state != "ready":
        note(f"starting {name}…")
        try:
            service = await client.start_service(ref, name, wait_s=READY_WAIT_S)
        except SessionServiceFailed as exc:
            tail = str(exc.extra.get("log_tail") or "").rstrip().splitlines()[-LOG_LINES:]
            if tail:
                note(f"the last lines {name} printed:\n" + "\n".join(f"  {line}" for line in tail))
            raise
    return service


def _free_or_any(host: str, wanted: int | None) -> int:
    """The service's own port when it is free here (so URLs look familiar), else 0 (any)."""
    if not wanted:
        return 0
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, wanted))
        except OSError:
            return 0
    return wanted

