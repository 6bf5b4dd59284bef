"""``corral admin policy …``: resource policies, the limits users and projects are held to
(`corral admin user set USER --policy P`, `corral admin project set NAME --policy P`)."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Sequence

import click
from rich.markup import escape
from rich.table import Table

from corral.common.errors import InvalidRequest
from corral.common.slots import format_size, parse_size

from ..models import ResourcePolicy
from .context import call_api
from .options import json_option
from .output import console, print_json

NONE = "none"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)", re.IGNORECASE)
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class _Cleared:
    """What ``none`` parses to: remove the limit."""


CLEARED = _Cleared()


def parse_duration(text: str) -> float:
    """``90`` (seconds), ``90s``, ``30m``, ``24h``, ``2d``, ``1h30m`` → seconds."""
    compact = text.strip().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration (e.g. 90, 30m, 24h, 2d, 1h30m)")
    seconds = sum(float(number) * _UNIT_S[unit.lower()] for number, unit in parts)
    if seconds <= 0:
        raise ValueError("a duration must be more than 0")
    return seconds


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _count(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a whole number >= 0")
    return int(text)


def _positive_count(text: str) -> int:
    number = _count(text)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _amount(text: str) -> str:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{text!r} is not a number >= 0")
    return f"{amount.normalize():f}"


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except InvalidRequest as exc:
        raise ValueError(exc.detail) from None


def _limit(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, str | None], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        if value.strip().lower() == NONE:
            return CLEARED
        try:
            return parse(value.strip())
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


# option, its field (a max_slots slot when dotted with "slot:"), parser, help
LIMIT_OPTIONS: Sequence[tuple[str, str, Callable[[str], Any], str]] = (
    ("--max-sessions", "max_concurrent_sessions", _count, "Sessions placed or running at once."),
    ("--max-pending", "max_pending_sessions", _count, "Sessions queued at once (more are refused)."),
    ("--max-gpus", "slot:cuda.device", _count, "Whole GPUs in use at once."),
    ("--max-shares", "slot:cuda.shares", _amount, "GPU shares in use at once (0.25 of a GPU counts 0.25)."),
    ("--max-cpu", "slot:cpu", _amount, "CPU cores in use at once."),
    ("--max-mem", "slot:mem", _size, "Memory in use at once, e.g. 256g."),
    ("--max-cluster-size", "max_cluster_size", _positive_count, "Kernels in one session."),
    ("--max-lifetime", "max_session_lifetime_s", parse_duration, "How long a session may live, e.g. 24h."),
    ("--idle-timeout", "idle_timeout_s", parse_duration, "How long a session may sit idle, e.g. 2h."),
)


def limit_options(func: Any) -> Any:
    for option, field, parse, text in reversed(LIMIT_OPTIONS):
        dest = field.replace("slot:", "slot_").replace(".", "_")
        func = click.option(option, dest, default=None, callback=_limit(parse), metavar="N|none",
                            help=f"{text} `none`: no limit.")(func)
    return func


def _body(limits: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    slots: dict[str, Any] = {}
    for _, field, _, _ in LIMIT_OPTIONS:
        value = limits.get(field.replace("slot:", "slot_").replace(".", "_"))
        if value is None or (creating and value is CLEARED):
            continue  # not given (or, when creating, no limit: the same)
        value = None if value is CLEARED else value
        if field.startswith("slot:"):
            slots[field[len("slot:"):]] = value
        else:
            body[field] = value
    if slots:
        body["max_slots"] = slots
    return body


def _slot_text(policy: ResourcePolicy, slot: str) -> str:
    value = policy.max_slots.get(slot)
    if value is None:
        return "-"
    return format_size(int(Decimal(value))) if slot == "mem" else value


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


def policy_table(policies: Sequence[ResourcePolicy]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "SESSIONS", "PENDING", "CPU", "MEM", "GPUS", "SHARES", "CLUSTER", "LIFETIME", "IDLE",
                   "HELD BY"):
        table.add_column(column, no_wrap=column == "NAME")
    for p in policies:
        held = [f"user {u}" for u in p.users] + [f"project {name}" for name in p.projects]
        table.add_row(
            escape(p.name), _number(p.max_concurrent_sessions), _number(p.max_pending_sessions),
            _slot_text(p, "cpu"), _slot_text(p, "mem"), _slot_text(p, "cuda.device"), _slot_text(p, "cuda.shares"),
            _number(p.max_cluster_size), format_duration(p.max_session_lifetime_s),
            format_duration(p.idle_timeout_s), escape(", ".join(held)) or "-",
        )
    return table


def _summary(policy: ResourcePolicy) -> str:
    parts = []
    for label, value in (("sessions", policy.max_concurrent_sessions), ("pending", policy.max_pending_sessions),
                         ("cluster size", policy.max_cluster_size)):
        if value is not None:
            parts.append(f"{label} {value}")
    for slot in ("cpu", "mem", "cuda.device", "cuda.shares"):
        if slot in policy.max_slots:
            parts.append(f"{slot} {_slot_text(policy, slot)}")
    for label, seconds in (("lifetime", policy.max_session_lifetime_s), ("idle timeout", policy.idle_timeout_s)):
        if seconds is not None:
            parts.append(f"{label} {format_duration(seconds)}")
    return ", ".join(parts) or "no limits"


@click.group("policy")
def admin_resource_policy_group() -> None:
    """Resource policies: limits on sessions and resources for users and projects.

    Give one to a user with `corral admin user set USER --policy P`, to a project with
    `corral admin project set NAME --policy P`; a session is held to both.
    """


@admin_resource_policy_group.command("create")
@click.argument("name")
@limit_options
@json_option
def create_command(name: str, as_json: bool, **limits: Any) -> None:
    """Create resource policy NAME; a limit left out is no limit."""
    policy = call_api(lambda client: client.create_resource_policy(name, **_body(limits, creating=True)))
    if as_json:
        print_json(policy.raw)
    else:
        click.echo(f"resource policy {policy.name} created: {_summary(policy)}")


@admin_resource_policy_group.command("set")
@click.argument("name")
@limit_options
@json_option
def set_command(name: str, as_json: bool, **limits: Any) -> None:
    """Change resource policy NAME: only the limits given (`none` removes one)."""
    body = _body(limits, creating=False)
    if not body:
        raise click.UsageError("nothing to change: give at least one limit (see --help)")
    policy = call_api(lambda client: client.update_resource_policy(name, **body))
    if as_json:
        print_json(policy.raw)
    else:
        click.echo(f"resource policy {policy.name}: {_summary(policy)}")


@admin_resource_policy_group.command("ls")
@json_option
def ls_command(as_json: bool) -> None:
    """Every resource policy, with the users and projects held to it."""
    policies = call_api(lambda client: client.list_resource_policies())
    if as_json:
        print_json([p.raw for p in policies])
    elif not policies:
        click.echo("no resource policies (create one: `corral admin policy create NAME --max-sessions 4`)", err=True)
    else:
        console().print(policy_table(policies))


@admin_resource_policy_group.command("info")
@click.argument("name")
@json_option
def info_command(name: str, as_json: bool) -> None:
    """One resource policy."""
    policy = call_api(lambda client: client.get_resource_policy(name))
    if as_json:
        print_json(policy.raw)
    else:
        console().print(policy_table([policy]))


@admin_resource_policy_group.command("rm")
@click.argument("name")
@json_option
def rm_command(name: str, as_json: bool) -> None:
    """Delete resource policy NAME (refused while a user or project is held to it)."""
    policy = call_api(lambda client: client.delete_resource_policy(name))
    if as_json:
        print_json(policy.raw)
    else:
        click.echo(f"resource policy {policy.name} deleted")


def none_or(value: str | None) -> str | None | _Cleared:
    """A name option where `none` clears the setting."""
    if value is None:
        return None
    return CLEARED if value.strip().lower() == NONE else value.strip()


def positive_weight(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        weight = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a number") from None
    if not weight.is_finite() or weight <= 0:
        raise click.BadParameter("the weight must be a number > 0")
    return float(weight)


def settings_body(**named: str | None) -> dict[str, Any]:
    """``--policy``-style options → a PATCH body: left out when not given, null for `none`."""
    body: dict[str, Any] = {}
    for key, value in named.items():
        parsed = none_or(value)
        if parsed is not None:
            body[key] = None if parsed is CLEARED else parsed
    return body
