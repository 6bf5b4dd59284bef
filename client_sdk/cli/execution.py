"""Streaming one ``execute`` to the terminal and turning its result into an exit status."""
from __future__ import annotations

from contextlib import aclosing

from ..api import AsyncCorralClient
from .exit_codes import FAILURE, INTERRUPTED
from .output import write_program_output


async def stream_execution(client: AsyncCorralClient, ref: str, code: str) -> int:
    """Print the code's stdout/stderr live; return the exit status to end with."""
    wrote_stderr = False
    async with aclosing(client.execute(ref, code)) as events:
        async for event in events:
            op = event.get("op")
            if op == "output":
                stream = "stderr" if event.get("stream") == "stderr" else "stdout"
                wrote_stderr = wrote_stderr or stream == "stderr"
                write_program_output(stream, str(event.get("data", "")))
            elif op == "result":
                return _exit_status(event, wrote_stderr)
    return FAILURE  # unreachable: execute() raises when no result comes


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
