"""Undoing a service start that failed half-way, without hiding why it failed."""
from __future__ import annotations

import contextlib
import logging

log = logging.getLogger(__name__)


async def undo_failed_start(started: contextlib.AsyncExitStack, error: BaseException) -> None:
    """Close what ``started`` holds; a second failure is logged and noted on ``error``, the one to report."""
    try:
        await started.aclose()
    except Exception as cleanup_error:  # noqa: BLE001 - logged and noted; ``error`` is re-raised
        log.debug("cleaning up after the failed start also failed", exc_info=True)
        error.add_note(f"cleaning up after this also failed: {type(cleanup_error).__name__}: {cleanup_error}")
