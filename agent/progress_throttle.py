"""Rate-limiting the progress lines an agent sends about a kernel it is starting."""
from __future__ import annotations

import time
from typing import Callable


class ProgressThrottle:
    """Pass at most one message per ``interval_s`` on to ``send``; ``flush`` sends the
    latest one held back, so the final state always gets through."""

    def __init__(
        self, send: Callable[[str], None], interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._send = send
        self._interval_s = interval_s
        self._clock = clock
        self._last_sent_at: float | None = None
        self._last_sent: str | None = None
        self._pending: str | None = None

    def __call__(self, message: str) -> None:
        now = self._clock()
        if self._last_sent_at is not None and now - self._last_sent_at < self._interval_s:
            self._pending = message
            return
        self._emit(message, now)

    def flush(self) -> None:
        if self._pending is not None:
            self._emit(self._pending, self._clock())

    def _emit(self, message: str, now: float) -> None:
        self._pending = None
        self._last_sent_at = now
        if message != self._last_sent:  # an unchanged line tells the user nothing new
            self._last_sent = message
            self._send(message)
