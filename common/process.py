"""Running a long-lived service in the foreground until Ctrl-C or SIGTERM."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Awaitable, Callable


def setup_logging(level: str | None = None) -> None:
    logging.basicConfig(
        level=(level or os.environ.get("CORRAL_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def serve_until_signalled(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        try:
            await start()
        except BaseException as start_error:
            # Stop what got started, but report why it did not start, not what stopping then tripped on.
            try:
                await stop()
            except Exception as stop_error:  # noqa: BLE001 - noted on the error that matters
                start_error.add_note(f"stopping after this failed also failed: {type(stop_error).__name__}: {stop_error}")
            raise
        try:
            await stopping.wait()
        finally:
            await stop()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_service(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(serve_until_signalled(start, stop))
