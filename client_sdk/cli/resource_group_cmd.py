"""``corral admin group …``: resource groups (where sessions run, in what order, for whom), and
``corral groups``: the groups you may use (`corral run --group G`)."""
from __future__ import annotations

from typing import Any, Sequence

import click
from rich.markup import escape
from rich.table import Table

from corral.common.errors import InvalidRequest
from corral.common.resource_groups import QUEUE_POLICIES, SESSION_TYPES, parse_scorer

from ..models import ResourceGroup
from .context import call_api
from .options import json_option
from .output import console, print_json

NONE_WORDS = frozenset({"none", "-"})


def _scorers(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> list[dict[str, Any]] | None:
    if not value:
        return None
    try:
        return [parse_scorer(item) for text in value for item in text.split(",") if item.strip()]
    except InvalidRequest as exc:
        raise click.BadParameter(exc.detail) from None


def _session_types(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> list[str] | None:
    if not value:
        return None
    types = [t.strip() for text in value for t in text.split(",") if t.strip()]
    unknown = [t for t in types if t not in SESSION_TYPES]
    if unknown or not types:
        raise click.BadParameter(f"{', '.join(unknown) or 'nothing'}: session types are {', '.join(SESSION_TYPES)}")
    return list(dict.fromkeys(types))


def _names(value: Sequence[str]) -> list[str] | None:
    """Repeated or comma-separated names; ``none`` alone is the empty list (nobody but admins)."""
    if not value:
        return None
    names = [n.strip() for text in value for n in text.split(",") if n.strip()]
    return [] if [n.lower() for n in names] in (["none"], ["-"]) else names


def _settings_options(creating: bool) -> Any:
    flag_default = {"default": None}  # not given: the server's default (create) or unchanged (set)

    def decorate(func: Any) -> Any:
        decorators = [
            click.option("--description", default=None, help="What the group is for."),
            click.option("--queue-policy", type=click.Choice(QUEUE_POLICIES), default=None,
                          help="Queue order: fifo (with backfill), lifo, drf, fair-share"
                               + (" (default fifo)." if creating else ".")),
            click.option("--backfill/--no-backfill", **flag_default,
                         help="Let later sessions start where they do not delay the first waiting one"
                              + (" (default on)." if creating else ".")),
            click.option("--preemption/--no-preemption", **flag_default,
                         help="Allow preempting lower-priority sessions" + (" (default off)." if creating else ".")),
            click.option("--scorer", "scorers", multiple=True, callback=_scorers, metavar="NAME[:WEIGHT]",
                         help="Agent scorer (repeatable): topology, concentrated, dispersed, first-fit; "
                              "weight > 0 (1)" + (" (default topology)." if creating else "; replaces the list.")),
            click.option("--session-types", "session_types", multiple=True, callback=_session_types,
                         metavar="TYPES", help="Session types it takes, e.g. batch or interactive,batch"
                                               + (" (default both)." if creating else ".")),
            click.option("--allow-user", "allow_users", multiple=True, metavar="USER",
                         help="A user who may use it (repeatable; `none`: nobody by name)"
                              + ("." if creating else "; replaces the list.")),
            click.option("--allow-project", "allow_projects", multiple=True, metavar="PROJECT",
                         help="A project whose sessions may use it (repeatable; `none`: no project)"
                              + ("." if creating else "; replaces the list.")),
        ]
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return decorate


def _body(description: str | None, queue_policy: str | None, backfill: bool | None, preemption: bool | None,
          scorers: list[dict[str, Any]] | None, session_types: list[str] | None, allow_users: Sequence[str],
          allow_projects: Sequence[str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in (("description", description), ("queue_policy", queue_policy), ("backfill", backfill),
                       ("preemption", preemption), ("scorers", scorers), ("allowed_session_types", session_types),
                       ("allowed_users", _names(allow_users)), ("allowed_projects", _names(allow_projects))):
        if value is not None:
            body[key] = value
    return body


def _scorer_text(group: ResourceGroup) -> str:
    return ", ".join(s.name if s.weight == 1 else f"{s.name}:{s.weight:g}" for s in group.scorers) or "-"


def _allowed_text(group: ResourceGroup) -> str:
    users, projects = group.raw.get("allowed_users"), group.raw.get("allowed_projects")
    if "allowed_users" not in group.raw:
        return "you"
    if users is None and projects is None:
        return "everyone"
    parts = [f"user {u}" for u in users or []] + [f"project {p}" for p in projects or []]
    return ", ".join(parts) or "admins only"


def _summary(group: ResourceGroup) -> str:
    extras = [group.queue_policy, "backfill" if group.backfill else "no backfill"]
    if group.preemption:
        extras.append("preemption")
    return (f"{', '.join(extras)}; scorers {_scorer_text(group)}; takes {', '.join(group.allowed_session_types)} "
            f"sessions; for {_allowed_text(group)}")


def group_table(groups: Sequence[ResourceGroup]) -> Table:
    admin = any("agents" in g.raw for g in groups)
    table = Table(box=None, header_style="bold")
    columns = ["NAME", "QUEUE", "BACKFILL", "PREEMPT", "SCORERS", "TYPES"]
    columns += ["ALLOWED", "AGENTS (ALIVE)"] if admin else []
    for column in [*columns, "DESCRIPTION"]:
        table.add_column(column, no_wrap=column == "NAME")
    for g in groups:
        row = [escape(g.name), g.queue_policy, "on" if g.backfill else "off", "on" if g.preemption else "off",
               _scorer_text(g), ",".join(g.allowed_session_types) or "-"]
        if admin:
            row += [escape(_allowed_text(g)), f"{g.raw.get('agents', 0)} ({g.raw.get('alive_agents', 0)})"]
        table.add_row(*row, escape(g.description) or "-")
    return table


def _print_groups(groups: list[ResourceGroup], as_json: bool) -> None:
    if as_json:
        print_json([g.raw for g in groups])
    elif not groups:
        click.echo("no resource groups you may use", err=True)
    else:
        console().print(group_table(groups))


@click.group("group")
def admin_resource_group_group() -> None:
    """Resource groups: a group's agents, queue policy, scorers and who may use it.

    Agents name their group in their config (`resource_group`); a group an agent names
    gets a row with the defaults when it registers. Sessions pick one with `--group`.
    """


@admin_resource_group_group.command("create")
@click.argument("name")
@_settings_options(creating=True)
@json_option
def create_command(name: str, as_json: bool, **settings: Any) -> None:
    """Create resource group NAME (everyone may use it unless --allow-user/--allow-project)."""
    group = call_api(lambda client: client.create_resource_group(name, **_body(**settings)))
    if as_json:
        print_json(group.raw)
    else:
        click.echo(f"resource group {group.name} created: {_summary(group)}")


@admin_resource_group_group.command("set")
@click.argument("name")
@_settings_options(creating=False)
@click.option("--allow-everyone", is_flag=True, help="Open it to everyone again (clears both allowed lists).")
@json_option
def set_command(name: str, allow_everyone: bool, as_json: bool, **settings: Any) -> None:
    """Change resource group NAME: only the options given."""
    body = _body(**settings)
    if allow_everyone:
        if "allowed_users" in body or "allowed_projects" in body:
            raise click.UsageError("--allow-everyone clears the allowed lists: give it without --allow-user/--allow-project")
        body.update(allowed_users=None, allowed_projects=None)
    if not body:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    group = call_api(lambda client: client.update_resource_group(name, **body))
    if as_json:
        print_json(group.raw)
    else:
        click.echo(f"resource group {group.name}: {_summary(group)}")


@admin_resource_group_group.command("ls")
@json_option
def ls_command(as_json: bool) -> None:
    """Every resource group, with who may use it and its agents (yours, for non-admins)."""
    _print_groups(call_api(lambda client: client.list_resource_groups()), as_json)


@admin_resource_group_group.command("info")
@click.argument("name")
@json_option
def info_command(name: str, as_json: bool) -> None:
    """One resource group."""
    group = call_api(lambda client: client.get_resource_group(name))
    if as_json:
        print_json(group.raw)
    else:
        console().print(group_table([group]))


@admin_resource_group_group.command("rm")
@click.argument("name")
@json_option
def rm_command(name: str, as_json: bool) -> None:
    """Delete resource group NAME (refused while agents, sessions or users' defaults use it)."""
    group = call_api(lambda client: client.delete_resource_group(name))
    if as_json:
        print_json(group.raw)
    else:
        click.echo(f"resource group {group.name} deleted")


@click.command("groups")
@json_option
def groups_command(as_json: bool) -> None:
    """The resource groups you may use (`corral run --group G`)."""
    _print_groups(call_api(lambda client: client.list_resource_groups()), as_json)
