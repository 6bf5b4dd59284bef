"""Streaming one ``execute`` to the terminal and turning its result into an exit status.

Ctrl-C while it streams: the first one interrupts the remote code (``POST …/interrupt``,
a SIGINT in the session's interpreter) and keeps streaming its output until the result
(exit status 130); a second one stops waiting at once (130), leaving the session as it is.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
from contextlib import aclosing
from typing import Callable, Iterator

from corral.common.errors import CorralError

from ..api import AsyncCorralClient
from .context import note
from .exit_codes import FAILURE, INTERRUPTED
from .output import write_program_output


async def stream_execution(
    client: AsyncCorralClient, ref: str, code: str, *, detach_hint: str | None = None, kernel: str | None = None
) -> int:
    """Print the code's stdout/stderr live; return the exit status to end with.

    ``detach_hint``: said after ``error: interrupted`` when a second Ctrl-C stops waiting
    (what became of the code, e.g. that it may still run in the session)."""
    loop = asyncio.get_running_loop()
    streaming = loop.create_task(_stream(client, ref, code, kernel))
    interrupts: list[asyncio.Task[None]] = []

    def on_ctrl_c() -> None:
        if not interrupts:
            note("interrupting the code… (Ctrl-C again to stop waiting)")
            interrupts.append(loop.create_task(_send_interrupt(client, ref, kernel)))
        else:
            streaming.cancel()

    with _ctrl_c_calls(loop, on_ctrl_c):
        try:
            exit_status, status = await asyncio.shield(streaming)
        except asyncio.CancelledError:
            if not streaming.cancelled():  # we are cancelled ourselves: stop the stream too
                streaming.cancel()
                with contextlib.suppress(BaseException):
                    await streaming
                raise
            note("error: interrupted" + (f" ({detach_hint})" if detach_hint else ""))
            return INTERRUPTED
        finally:
            for task in interrupts:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*interrupts, return_exceptions=True)
    if interrupts and status == "interrupted":
        note("error: interrupted")
        return INTERRUPTED
    return exit_status


async def _send_interrupt(client: AsyncCorralClient, ref: str, kernel: str | None = None) -> None:
    try:
        if not await client.interrupt(ref, kernel=kernel):
            note("(nothing was running any more)", verbose_only=True)
    except CorralError as exc:
        note(f"warning: could not interrupt the code: {exc}")


@contextlib.contextmanager
def _ctrl_c_calls(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> Iterator[None]:
    """SIGINT calls ``callback`` in the loop instead of cancelling the command (where the
    platform allows; elsewhere Ctrl-C keeps its usual effect)."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, callback)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or not POSIX
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        with contextlib.suppress(TypeError, ValueError):
            signal.signal(signal.SIGINT, previous)  # asyncio.run's own handler, usually


async def _stream(client: AsyncCorralClient, ref: str, code: str, kernel: str | None = None) -> tuple[int, str]:
    wrote_stderr = False
    async with aclosing(client.execute(ref, code, kernel=kernel)) as events:
        async for event in events:
            op = event.get("op")
            if op == "output":
                stream = "stderr" if event.get("stream") == "stderr" else "stdout"
                wrote_stderr = wrote_stderr or stream == "stderr"
                write_program_output(stream, str(event.get("data", "")))
            elif op == "result":
                return _exit_status(event, wrote_stderr), str(event.get("status"))
    return FAILURE, "error"  # unreachable: execute() raises when no result comes


def _exit_status(result: dict, wrote_stderr: bool) -> int:
    status = result.get("status")
    try:
        exit_code = int(result.get("exit_code") or 0)
    except (TypeError, ValueError):
        exit_code = FAILURE
    error = result.get("error")
    if status == "error" and error and not wrote_stderr:
        # The traceback normally arrives on stderr; say something if it did not.
        write_program_output("stderr", str(error) if str(error).endswith("\n") else f"{error}\n")
    if status == "interrupted":
        return exit_code or INTERRUPTED
    if status == "error" and exit_code == 0:
        return FAILURE
    return exit_code
