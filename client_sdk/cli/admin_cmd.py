"""``corral admin …``: cluster administration (admin keypairs only)."""
from __future__ import annotations

import shlex

import click

from ..models import Agent
from .context import cli_state, run_async
from .output import console, print_json
from .options import json_option
from .project_cmd import admin_project_group
from .render import agent_gpu_table, agent_table
from .resource_group_cmd import admin_resource_group_group
from .resource_policy_cmd import admin_resource_policy_group, positive_weight, settings_body


@click.group("admin")
def admin_group() -> None:
    """Cluster administration."""


@admin_group.command("agents")
@click.option("--gpus", "per_gpu", is_flag=True, help="Also a table per agent: each GPU's model, memory and allocation.")
@json_option
def agents_command(per_gpu: bool, as_json: bool) -> None:
    """Agents with their status, capacity and usage.

    GPUS: whole GPUs free, then those in use, taken whole or shared (with the
    share in use), e.g. "3 free of 8 (5 in use: 4 whole, 1 shared 0.25)".
    NOTE: why the agent is in its state; "overcommitted: …" when it restarted
    with fewer resources than its running sessions hold.
    """
    client = cli_state().client()

    async def fetch() -> list[Agent]:
        async with client:
            return await client.list_agents()

    agents = run_async(fetch())
    if as_json:
        print_json([a.raw for a in agents])
    elif not agents:
        click.echo("no agents registered", err=True)
    else:
        console().print(agent_table(agents))
        if per_gpu:
            for agent in agents:
                console().print()
                if agent.gpus:
                    console().print(agent_gpu_table(agent))
                else:
                    console().print(f"{agent.id}: no GPUs")


admin_group.add_command(admin_project_group)
admin_group.add_command(admin_resource_group_group)
admin_group.add_command(admin_resource_policy_group)


@admin_group.group("user")
def user_group() -> None:
    """Users and their keypairs."""


@user_group.command("create")
@click.argument("username")
@click.option("--admin", "is_admin", is_flag=True, help="Give the user the admin role.")
@click.option("--password", "ask_password", is_flag=True,
              help="Also give them a web UI password (asked twice, hidden).")
@click.option("--password-stdin", "password_stdin", is_flag=True,
              help="Like --password, reading the password from the first line of stdin.")
@json_option
def user_create_command(username: str, is_admin: bool, ask_password: bool, password_stdin: bool,
                        as_json: bool) -> None:
    """Create a user and print their new keypair (shown only this once)."""
    from .passwd_cmd import read_new_password

    password = read_new_password(username, password_stdin) if ask_password or password_stdin else None
    client = cli_state().client()

    async def create() -> dict:
        async with client:
            return await client.create_user(username, "admin" if is_admin else "user", password)

    user = run_async(create())
    if as_json:
        print_json(user)  # the keypair included
        return
    click.echo(f"user {user['username']} ({user['role']}) created; their keypair (shown only now):")
    click.echo(f"CORRAL_ACCESS_KEY={user['access_key']}")
    click.echo(f"CORRAL_SECRET_KEY={user['secret_key']}")
    click.echo("They log in with (use an endpoint they can reach, if this one is local):")
    login = ["corral", "login", client.endpoint, "--access-key", user["access_key"], "--secret-key", user["secret_key"]]
    click.echo("  " + shlex.join(login))
    if password is not None:
        click.echo(f"They sign in to the web UI at {client.endpoint}/ as {user['username']} with the password.")


@user_group.command("ls")
@json_option
def user_ls_command(as_json: bool) -> None:
    """All users."""
    client = cli_state().client()

    async def fetch() -> list:
        async with client:
            return await client.list_users()

    users = run_async(fetch())
    if as_json:
        print_json(users)
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("USERNAME", "ROLE", "KEYPAIRS", "POLICY", "DEFAULT GROUP", "DEFAULT PROJECT", "FAIR SHARE", "ID"):
        table.add_column(column)
    for user in users:
        table.add_row(user["username"], user["role"], str(user.get("keypairs", "")),
                      user.get("resource_policy") or "-", user.get("default_group") or "-",
                      user.get("default_project") or "-", f"{user.get('fair_share', 1.0):g}", user["id"])
    console().print(table)


@user_group.command("set")
@click.argument("username")
@click.option("--policy", default=None, metavar="POLICY|none", help="The resource policy they are held to.")
@click.option("--default-group", default=None, metavar="GROUP|none",
              help="Where their sessions go when they name no group (none: \"default\").")
@click.option("--default-project", default=None, metavar="PROJECT|none",
              help="The project (they must be a member) their sessions count against when they name none.")
@click.option("--fair-share", default=None, callback=positive_weight, metavar="WEIGHT",
              help="Their fair-share weight, > 0 (1 by default).")
@json_option
def user_set_command(username: str, policy: str | None, default_group: str | None, default_project: str | None,
                     fair_share: float | None, as_json: bool) -> None:
    """Set a user's resource policy, default group and project, fair-share weight (`none` clears one)."""
    body = settings_body(resource_policy=policy, default_group=default_group, default_project=default_project)
    if fair_share is not None:
        body["fair_share"] = fair_share
    if not body:
        raise click.UsageError("nothing to change: give --policy, --default-group, --default-project or --fair-share")
    client = cli_state().client()

    async def run() -> dict:
        async with client:
            return await client.update_user(username, **body)

    user = run_async(run())
    if as_json:
        print_json(user)
        return
    click.echo(f"user {user['username']}: policy {user.get('resource_policy') or 'none'}, default group "
               f"{user.get('default_group') or 'default'}, default project {user.get('default_project') or 'none'}, "
               f"fair share {user.get('fair_share', 1.0):g}")


def _set_active(username: str, active: bool, as_json: bool) -> None:
    client = cli_state().client()

    async def run() -> dict:
        async with client:
            return await (client.enable_user(username) if active else client.disable_user(username))

    user = run_async(run())
    if as_json:
        print_json(user)
    elif active:
        click.echo(f"user {user['username']} enabled: their keypairs work again")
    else:
        click.echo(f"user {user['username']} disabled: their keypairs and web sessions no longer work")


@user_group.command("disable")
@click.argument("username")
@json_option
def user_disable_command(username: str, as_json: bool) -> None:
    """Disable a user: their keypairs and web sessions stop working at once."""
    _set_active(username, False, as_json)


@user_group.command("enable")
@click.argument("username")
@json_option
def user_enable_command(username: str, as_json: bool) -> None:
    """Enable a disabled user again (they sign in to the web UI anew)."""
    _set_active(username, True, as_json)
