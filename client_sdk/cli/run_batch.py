"""``corral run … -- COMMAND``: a throwaway batch session (a cluster session with --cluster-size) that
runs COMMAND in every kernel, streams its output (labelled by kernel in a cluster) and exits with
main1's exit status."""
from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any, Sequence

from corral.common.errors import CorralError

from ..api import AsyncCorralClient
from ..errors import SessionFailed, WaitTimeout
from .context import note
from .exit_codes import FAILURE, INTERRUPTED
from .render import mount_warnings
from .start_progress import StartProgress

ENDED = {"TERMINATED", "ERROR", "CANCELLED"}
SETTLE_TIMEOUT = 120.0  # after the output ends: the other kernels being stopped


async def run_batch(client: AsyncCorralClient, command: Sequence[str], *, name: str, keep: bool, timeout: float,
                    **create: Any) -> int:
    """One COMMAND argument is a shell line (``sh -c``); several are an argv, as for `session create`."""
    from .run_cmd import _after_timeout, _destroy_quietly
    from .session_cmd import _command_arg

    async with client:
        try:
            session = await client.create_session(type="batch", name=name, command=_command_arg(command), **create)
        except asyncio.CancelledError:
            await _destroy_quietly(client, name, name)
            raise
        for warning in mount_warnings(session):
            note(f"warning: {warning}")
        label = f"{session.name} ({session.id})"
        finished = False
        try:
            try:
                with StartProgress(f"session {session.name}") as progress:
                    await client.wait_for_status(session.id, {"RUNNING", *ENDED}, timeout,
                                                 on_progress=progress.on_change)
            except WaitTimeout as exc:
                finished = True
                raise WaitTimeout(await _after_timeout(client, session, timeout, exc, keep)) from None
            except SessionFailed as exc:  # it ended before it ran (every kernel, or one that failed)
                note(str(exc), verbose_only=True)
            await _print_output(client, session.id)
            final = await _final_state(client, session.id)
            finished = True
        except asyncio.CancelledError:
            if not keep:
                await _destroy_quietly(client, session.id, label)
                finished = True
            note(f"error: interrupted; session {label} " + ("kept" if keep else "destroyed"))
            return INTERRUPTED
        finally:
            if keep and not finished:
                note(f"session {label} kept")
        if final.status != "TERMINATED" or final.exit_code is None:
            note(f"error: session {session.name} ended {final.status}: {final.status_reason}")
            return FAILURE if final.exit_code in (None, 0) else final.exit_code
        if final.exit_code != 0:
            note(f"session {session.name}: {final.status_reason}")
        return final.exit_code


async def _final_state(client: AsyncCorralClient, session_id: str) -> Any:
    """The session once it has ended (its other kernels are stopped after main1's end)."""
    try:
        return await client.wait_for_status(session_id, ENDED, SETTLE_TIMEOUT)
    except SessionFailed:
        return await client.get_session(session_id)


async def _print_output(client: AsyncCorralClient, session_id: str) -> None:
    """The session's output as it comes, until it ends (every kernel's, labelled, in a cluster)."""
    chunks = client.follow_logs(session_id)
    async with contextlib.aclosing(chunks):
        try:
            async for chunk in chunks:
                sys.stdout.write(chunk)
                sys.stdout.flush()
        except CorralError as exc:
            note(f"warning: the output stream broke ({exc}); waiting for the session to end")
