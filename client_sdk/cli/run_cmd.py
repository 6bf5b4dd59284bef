"""``corral run``: a throwaway session for one piece of code."""
from __future__ import annotations

import asyncio
import secrets

import click

from corral.common.errors import Conflict, CorralError, NotFound

from ..api import AsyncCorralClient
from ..models import Session
from ..errors import SessionFailed, WaitTimeout
from .context import cli_state, note, run_async
from .execution import stream_execution
from .options import cluster_options, placement_options, read_code, resources_from_options, session_spec_options
from .render import mount_warnings
from .start_progress import StartProgress

DESTROY_TIMEOUT = 15.0


class _RunCommand(click.Command):
    """Notes whether the arguments came after ``--``: then they are a command, not Python code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["run_command_given"] = "--" in args
        return super().parse_args(ctx, args)


@click.command("run", cls=_RunCommand)
@session_spec_options
@placement_options
@cluster_options
@click.option("--name", default=None, help="Session name (default: generated).")
@click.option("--keep", is_flag=True, help="Keep the session after the code ends.")
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=600.0, show_default=True,
    help="Seconds to wait for the session to start (queueing and image preparation included); on "
         "timeout the session is cancelled (kept queued with --keep) and the command exits 1 saying why it waited.",
)
@click.argument("code", nargs=-1, required=True)
def run_command(
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
    keep: bool,
    timeout: float,
    code: tuple[str, ...],
) -> None:
    """Run CODE in a new session, streaming its output, and exit with its status.

    CODE is Python source, `-` to read it from stdin, or `@file.py`. The
    session is destroyed afterwards (also on Ctrl-C) unless --keep is given.
    Ctrl-C while the code runs interrupts it and shows its output until it
    stops (a second Ctrl-C stops waiting); the exit status is then 130.

    `corral run [OPTIONS] -- COMMAND…` runs a command instead, as a batch
    session: in every kernel of a cluster (--cluster-size N), each knowing
    its role from CORRAL_CLUSTER_* and MASTER_ADDR/WORLD_SIZE/RANK. Every
    kernel's output is shown, labelled [main1], [sub1] …; the exit status is
    main1's (or a failing kernel's).
    """
    resources = resources_from_options(cpu, mem, gpus, gpu_share)
    if click.get_current_context().meta.get("run_command_given"):
        from .run_batch import run_batch

        status = run_async(run_batch(
            cli_state().client(), code, name=name or f"run-{secrets.token_hex(4)}", keep=keep, timeout=timeout,
            image=image, env=env, resources=resources, mounts=list(mounts), resource_group=group, project=project,
            priority=priority, cluster_size=cluster_size, cluster_mode=cluster_mode,
        ))
        click.get_current_context().exit(status)
    if len(code) != 1:
        raise click.UsageError("give the Python code as one argument, or a command after `--`")
    if cluster_size != 1:
        raise click.UsageError("--cluster-size runs a command in every kernel: put it after `--`")
    client = cli_state().client()  # after the usage checks: a wrong command line says so, configured or not
    source = read_code(code[0])
    exit_status = run_async(
        _run(client, source, image=image, resources=resources, env=env, mounts=list(mounts),
             name=name, keep=keep, timeout=timeout, group=group, project=project, priority=priority)
    )
    click.get_current_context().exit(exit_status)


async def _run(
    client: AsyncCorralClient,
    code: str,
    *,
    image: str | None,
    resources: dict[str, str | int],
    env: dict[str, str],
    mounts: list[str],
    name: str | None,
    keep: bool,
    timeout: float,
    group: str | None = None,
    project: str | None = None,
    priority: int | None = None,
) -> int:
    # Naming the session here means a Ctrl-C during the create call can still find it.
    name = name or f"run-{secrets.token_hex(4)}"
    async with client:
        try:
            session = await client.create_session(
                image=image, type="interactive", name=name, env=env, resources=resources, mounts=mounts,
                resource_group=group, project=project, priority=priority,
            )
        except asyncio.CancelledError:
            await _destroy_quietly(client, name, name)
            raise
        note(f"session {session.name} ({session.id}) created", verbose_only=True)
        for warning in mount_warnings(session):
            note(f"warning: {warning}")
        ended = False
        try:
            try:
                with StartProgress(f"session {session.name}") as progress:
                    await client.wait_for_status(session.id, {"RUNNING"}, timeout, on_progress=progress.on_change)
            except SessionFailed:
                ended = True  # nothing left to destroy; the error says why
                raise
            except WaitTimeout as exc:
                ended = True  # dealt with here: cancelled, or kept with --keep
                raise WaitTimeout(await _after_timeout(client, session, timeout, exc, keep)) from None
            note(f"session {session.name} is running", verbose_only=True)
            hint = f"stopped waiting; session {session.name} is kept" if keep else None
            return await stream_execution(client, session.id, code, detach_hint=hint)
        finally:
            if keep and not ended:
                note(f"session {session.name} ({session.id}) kept")
            elif not keep and not ended:
                await _destroy_quietly(client, session.id, f"{session.name} ({session.id})")


async def _after_timeout(
    client: AsyncCorralClient, session: Session, timeout: float, exc: WaitTimeout, keep: bool
) -> str:
    """The session never started: cancel it (it exists only for this run) unless --keep; say why it waited."""
    status = exc.extra.get("session_status") or session.status
    reason = exc.extra.get("reason") or ""
    said = f"session {session.name} did not start within {timeout:g}s (last status {status}" + (
        f": {reason})" if reason else ")"
    )
    if keep:
        return f"{said}; kept (--keep): `corral session rm {session.name}` cancels it"
    try:
        await asyncio.wait_for(client.destroy_session(session.id), DESTROY_TIMEOUT)
    except (CorralError, asyncio.TimeoutError) as error:
        return f"{said}; could not cancel it ({error}): `corral session rm {session.name}` does"
    return f"{said}; cancelled it"


async def _destroy_quietly(client: AsyncCorralClient, ref: str, label: str) -> None:
    """Best effort: the run's outcome, not a cleanup hiccup, decides the exit status."""
    try:
        await asyncio.wait_for(client.destroy_session(ref), DESTROY_TIMEOUT)
        note(f"session {label} destroyed", verbose_only=True)
    except (NotFound, Conflict):
        pass  # already gone or going (or never created)
    except (CorralError, asyncio.TimeoutError) as exc:
        note(f"warning: could not destroy session {label}: {exc}")
