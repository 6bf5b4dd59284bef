"""``corral session …``: create, list, inspect, follow and destroy sessions."""
from __future__ import annotations

from typing import Sequence

import click
from rich.table import Table

from corral.common.errors import CorralError

from ..errors import WaitTimeout
from ..models import TERMINAL_STATUSES, GroupQueue, Session
from .context import call_api, cli_state, note, run_async
from .exit_codes import UNREACHABLE, exit_code_for
from .output import console, print_json, print_json_line
from .options import cluster_options, json_option, placement_options, resources_from_options, session_spec_options
from .render import mount_warnings, format_slots, format_time, session_panel, session_table, status_change_line, status_text
from .start_progress import StartProgress

WAIT_TARGETS = {
    "interactive": {"RUNNING"},
    # A short batch job may be done before we look; finishing is fine too.
    "batch": {"RUNNING", "TERMINATED"},
}


@click.group("session")
def session_group() -> None:
    """Create, list, inspect and destroy sessions."""


@session_group.command("create")
@session_spec_options
@placement_options
@cluster_options
@click.option("--name", default=None, help="Session name (default: generated).")
@click.option(
    "--type", "session_type", type=click.Choice(["interactive", "batch"]), default="interactive",
    show_default=True, help="interactive lives until destroyed; batch runs COMMAND and ends.",
)
@click.option(
    "--wait/--no-wait", default=True, show_default=True,
    help="Wait until the session runs, showing why it waits (e.g. for free resources) on stderr.",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=600.0, show_default=True,
    help="Seconds to wait with --wait. On timeout the session stays queued (it starts once resources free "
         "up) and the command exits 1 saying why it waits; `corral session rm NAME` cancels it.",
)
@json_option
@click.argument("command", nargs=-1)
def create_command(
    image: str | None,
    cpu: str | None,
    mem: str | None,
    gpus: int | None,
    gpu_share: str | None,
    env: dict[str, str],
    mounts: tuple[str, ...],
    group: str | None,
    project: str | None,
    priority: int | None,
    cluster_size: int,
    cluster_mode: str,
    name: str | None,
    session_type: str,
    wait: bool,
    timeout: float,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Create a session; a batch session runs COMMAND (put it after `--`).

    One COMMAND argument is run by `sh -c`, so a quoted shell line works:
    `-- 'python job.py && echo done'`. Several arguments are run as they are,
    without a shell: `-- python job.py --epochs 3`.
    """
    if session_type == "batch" and not command:
        raise click.UsageError(
            "a batch session needs a COMMAND, e.g. `corral session create --type batch -- python job.py`"
        )
    resources = resources_from_options(cpu, mem, gpus, gpu_share)
    client = cli_state().client()

    async def create() -> Session:
        async with client:
            session = await client.create_session(
                image=image, type=session_type, name=name, command=_command_arg(command),
                env=env, resources=resources, mounts=list(mounts), resource_group=group, project=project,
                priority=priority, cluster_size=cluster_size, cluster_mode=cluster_mode,
            )
            if not wait:
                return session
            note(f"session {session.name} ({session.id}) created; waiting for it to start…", verbose_only=True)
            try:
                with StartProgress(f"session {session.name}") as progress:
                    return await client.wait_for_status(
                        session.id, WAIT_TARGETS[session_type], timeout, on_progress=progress.on_change
                    )
            except WaitTimeout as exc:
                raise WaitTimeout(still_waiting(session, timeout, exc)) from None

    session = run_async(create())
    for warning in mount_warnings(session):
        note(f"warning: {warning}")
    if as_json:
        print_json(session.raw)
    else:
        click.echo(f"session {session.name} ({session.id}) is {session.status}")


def _command_arg(command: Sequence[str]) -> str | list[str] | None:
    """One argument is a shell line (``sh -c``, as the API treats a string); several are an argv."""
    if not command:
        return None
    return command[0] if len(command) == 1 else list(command)


def still_waiting(session: Session, timeout: float, exc: WaitTimeout) -> str:
    """What a timed-out wait says: where the session is, why, and that it was left as it is."""
    status = exc.extra.get("session_status") or session.status
    reason = exc.extra.get("reason") or ""
    why = f"{status}: {reason}" if reason else status
    if status == "PENDING":
        left = "it is still queued and starts once resources free up"
    else:
        left = f"it is still {status}"
    return (
        f"session {session.name} did not start within {timeout:g}s (last status {why}); {left}: "
        f"`corral session rm {session.name}` cancels it, `corral session events {session.name}` follows it"
    )


@session_group.command("ls")
@click.option("--all", "-a", "show_all", is_flag=True, help="Include terminated sessions.")
@click.option(
    "--status", "-s", "statuses", multiple=True, metavar="STATUS",
    help="Only these statuses (repeatable or comma-separated), e.g. RUNNING,PENDING.",
)
@click.option(
    "--all-users", "-A", "all_users", is_flag=True,
    help="Every user's sessions, with an OWNER column (admins only); act on one as OWNER/NAME.",
)
@json_option
def ls_command(show_all: bool, statuses: tuple[str, ...], all_users: bool, as_json: bool) -> None:
    """List your sessions (running and pending unless --all or --status)."""
    wanted = [s.strip().upper() for item in statuses for s in item.split(",") if s.strip()]
    client = cli_state().client()

    async def collect() -> list[Session]:
        async with client:
            return [
                s async for s in client.iter_sessions(status=wanted or None, all=show_all, all_users=all_users)
            ]

    sessions = run_async(collect())
    if as_json:
        print_json([s.raw for s in sessions])
    elif not sessions:
        note("no sessions" + ("" if show_all or wanted else " (use --all to include terminated ones)"))
    elif all_users:
        console().print(_owner_table(sessions))
    else:
        console().print(session_table(sessions))


def _owner_table(sessions: Sequence[Session]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("OWNER", "ID", "NAME", "STATUS", "TYPE", "IMAGE", "RESOURCES", "GROUP", "PROJECT", "PRIO",
                   "AGENT", "CREATED"):
        table.add_column(column, no_wrap=column in ("OWNER", "ID", "NAME", "STATUS"))
    for s in sessions:
        table.add_row(
            s.owner or "-", s.short_id, s.name, status_text(s.status), s.type, s.image,
            format_slots(s.requested_slots), s.resource_group, s.project or "-", str(s.priority), s.agent_id or "-",
            format_time(s.created_at),
        )
    return table


@session_group.command("info")
@click.argument("ref", metavar="SESSION")
@json_option
def info_command(ref: str, as_json: bool) -> None:
    """Status with its history, agent, image, resources, allocation, containers."""
    client = cli_state().client()

    async def fetch() -> tuple[Session, str | None]:
        async with client:
            session = await client.get_session(ref)
            position = None
            if session.status == "PENDING":
                try:
                    position = queue_position(session.id, await client.queue(session.resource_group))
                except CorralError:
                    position = None  # the queue view is extra: the session's own info still shows
            return session, position

    session, position = run_async(fetch())
    if as_json:
        print_json({**session.raw, "queue_position": position} if position else session.raw)
    else:
        console().print(session_panel(session))
        if position:
            click.echo(f"queue: {position}")


def queue_position(session_id: str, groups: list[GroupQueue]) -> str | None:
    """"position 3 of 7 in resource group gpu (drf + backfill)" for a pending session, None when not there."""
    for group in groups:
        for entry in group.entries:
            if entry.session_id == session_id:
                mode = f"{group.queue_policy}{' + backfill' if group.backfill else ', strict order'}"
                return f"position {entry.position} of {len(group.entries)} in resource group {group.group} ({mode})"
    return None


LOGS_QUIET_HINT_S = 1.0  # `logs --follow`: say that nothing came yet after this long


@session_group.command("logs")
@click.argument("ref", metavar="SESSION")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the session ends (Ctrl-C stops).")
@click.option("--kernel", "-k", default=None, metavar="NAME",
              help="Only this kernel's output (main1, sub1 …); by default a cluster session shows every "
                   "kernel's, each line labelled [NAME].")
def logs_command(ref: str, follow: bool, kernel: str | None) -> None:
    """Print the session's container output: what its runner, executed code and
    batch command wrote to stdout/stderr (the last 5000 lines)."""
    client = cli_state().client()

    async def fetch() -> str:
        async with client:
            return await client.logs(ref, kernel=kernel)

    async def follow_logs() -> bool:
        import asyncio
        import contextlib
        import sys

        wrote = False
        async with client:
            chunks = client.follow_logs(ref, kernel=kernel)
            async with contextlib.aclosing(chunks):
                next_chunk = asyncio.ensure_future(anext(chunks, None))
                try:
                    done, _ = await asyncio.wait({next_chunk}, timeout=LOGS_QUIET_HINT_S)
                    if not done:
                        note(f"no output from {ref} yet; waiting for some (Ctrl-C to stop)")
                    while (chunk := await next_chunk) is not None:
                        wrote = True
                        sys.stdout.write(chunk)
                        sys.stdout.flush()
                        next_chunk = asyncio.ensure_future(anext(chunks, None))
                finally:
                    if not next_chunk.done():
                        next_chunk.cancel()
                        await asyncio.gather(next_chunk, return_exceptions=True)
        return wrote

    if follow:
        if not run_async(follow_logs()):
            note(f"{ref} wrote no output before it ended")
        return
    text = run_async(fetch())
    if not text:
        note(f"no output from {ref} yet (`corral session logs --follow {ref}` waits for some)")
    click.echo(text, nl=bool(text) and not text.endswith("\n"))


@session_group.command("rm")
@click.argument("refs", metavar="SESSION…", nargs=-1, required=True)
@json_option
def rm_command(refs: Sequence[str], as_json: bool) -> None:
    """Destroy sessions (a pending one is cancelled).

    A session that has already ended is left as it is ("already TERMINATED"), not an error.
    """
    client = cli_state().client()
    failures: list[CorralError] = []
    already: set[str] = set()

    async def destroy_all() -> list[Session]:
        destroyed: list[Session] = []
        async with client:
            for ref in refs:
                try:
                    found = await client.get_session(ref)
                    if found.status in TERMINAL_STATUSES:
                        already.add(found.id)
                        destroyed.append(found)
                        continue
                    destroyed.append(await client.destroy_session(found.id))
                except CorralError as exc:
                    if exit_code_for(exc) == UNREACHABLE:  # the rest would fail alike
                        raise
                    failures.append(exc)
                    click.echo(f"error: {ref}: {exc}", err=True)
        return destroyed

    destroyed = run_async(destroy_all())
    if as_json:
        print_json([s.raw for s in destroyed])
    else:
        for session in destroyed:
            was = "already " if session.id in already else ""
            click.echo(f"session {session.name} ({session.id}) is {was}{session.status}")
    if failures:
        click.get_current_context().exit(exit_code_for(failures[0]))


@session_group.command("events")
@click.argument("ref", metavar="SESSION")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (NDJSON).")
def events_command(ref: str, as_json: bool) -> None:
    """Follow the session's status changes until it ends (history first), with
    progress lines (e.g. an image pull) while it starts."""
    client = cli_state().client()

    async def follow() -> None:
        out = console()
        async with client:
            async for change in client.watch_session(ref, progress=True):
                if as_json:
                    print_json_line({"event": change.kind, **change.raw})
                else:
                    out.print(status_change_line(change), soft_wrap=True)

    run_async(follow())


@session_group.command("wait")
@click.argument("ref", metavar="SESSION")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Give up after this many seconds (exit 1).")
@json_option
def wait_command(ref: str, timeout: float | None, as_json: bool) -> None:
    """Wait until SESSION ends; exit with a batch command's exit code.

    Exit status: the batch command's own code; 0 for any other session that
    ended TERMINATED; 1 when it ended in ERROR or was CANCELLED.
    """
    ended = call_api(lambda client: client.wait_for_status(ref, TERMINAL_STATUSES, timeout))
    if as_json:
        print_json(ended.raw)
    else:
        click.echo(f"session {ended.name} ({ended.id}) is {ended.status}: {ended.status_reason or 'no reason given'}")
    if ended.status != "TERMINATED":
        click.get_current_context().exit(1)
    code = ended.exit_code if ended.type == "batch" and ended.exit_code is not None else 0
    click.get_current_context().exit(code)
