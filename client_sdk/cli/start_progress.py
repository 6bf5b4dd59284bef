"""What a session is doing while we wait for it to start, on stderr.

A terminal gets one spinner line that always shows the latest news; anything
else (a pipe, a CI log) gets plain progress lines, not too often. stdout is
never touched, so ``--json`` output stays clean.
"""
from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Callable

import click
from rich.console import Console
from rich.status import Status
from rich.text import Text

from ..models import StatusChange

PLAIN_MIN_INTERVAL_S = 5.0


class StartProgress:
    """Use as a context manager; pass ``on_change`` as ``wait_for_status(on_progress=...)``."""

    def __init__(
        self, label: str, *, interactive: bool | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.label = label
        self.interactive = _stderr_is_tty() if interactive is None else interactive
        self._clock = clock
        self._status: Status | None = None
        self._last_line: str | None = None
        self._last_printed_at: float | None = None
        self._last_state: str | None = None

    def __enter__(self) -> "StartProgress":
        if self.interactive:
            self._status = Console(stderr=True).status(Text(f"{self.label}: waiting to start…"))
            self._status.start()
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def on_change(self, change: StatusChange) -> None:
        if self._status is not None:
            text = f"{self.label}: {change.status}" + (f" — {change.reason}" if change.reason else "")
            self._status.update(Text(text))  # Text: a reason is never read as markup
            return
        # Plain output: only the progress news (status changes have their own notes), no
        # repeats, at most one line every few seconds unless the session moved on.
        if not change.is_progress or not change.reason or change.reason == self._last_line:
            return
        now = self._clock()
        moved_on = change.status != self._last_state
        if not moved_on and self._last_printed_at is not None and now - self._last_printed_at < PLAIN_MIN_INTERVAL_S:
            return
        self._last_line, self._last_printed_at, self._last_state = change.reason, now, change.status
        click.echo(f"{self.label}: {change.reason}", err=True)


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False
