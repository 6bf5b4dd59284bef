"""Errors the client raises on top of those in ``corral.common.errors``."""
from __future__ import annotations

from typing import TYPE_CHECKING

from corral.common.errors import CorralError

if TYPE_CHECKING:
    from .models import Session


class SessionFailed(CorralError):
    """A session reached ERROR or CANCELLED (or ended) while we waited for another status."""

    type_suffix = "client-session-failed"
    status = 500
    title = "Session failed"

    def __init__(self, session: "Session") -> None:
        reason = session.status_reason or "no reason given"
        super().__init__(f"session {session.name} {_verb(session.status)}: {reason}")
        self.session = session


class WaitTimeout(CorralError):
    """A wait for a session status ran past its deadline."""

    type_suffix = "client-wait-timeout"
    status = 504
    title = "Timed out"


class ExecutionStreamBroken(CorralError):
    """The execute stream ended without its final ``result`` line."""

    type_suffix = "client-execution-stream-broken"
    status = 502
    title = "Execution stream broken"


def _verb(status: str) -> str:
    return {"ERROR": "failed", "CANCELLED": "was cancelled", "TERMINATED": "ended"}.get(
        status, f"is {status}"
    )
