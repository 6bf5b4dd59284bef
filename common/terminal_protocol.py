"""The terminal websocket, the same on every hop (client ↔ manager ↔ agent).

- Binary messages carry terminal bytes: keystrokes towards the session, output back.
- Text messages are JSON control messages:
  - towards the session: ``{"type": "resize", "rows": R, "cols": C}``;
  - back: ``{"type": "attached", "pty": ID}`` first (re-attach later with ``?attach=ID``),
    ``{"type": "exit", "code": N}`` when the shell ends (then the socket closes),
    ``{"type": "error", "detail": TEXT}`` when the connection to the session is lost.

The shell outlives a dropped connection for a grace period, so a client that
reconnects with ``attach`` finds it as it was (the recent output is replayed).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequest

ATTACHED = "attached"
EXIT = "exit"
ERROR = "error"
RESIZE = "resize"

DEFAULT_ROWS = 24
DEFAULT_COLS = 80
MAX_DIMENSION = 1000
# Websocket keepalive on every hop: a silent peer is dropped after about twice this.
HEARTBEAT_S = 20.0
MAX_MESSAGE = 1 << 20


@dataclass(frozen=True)
class TerminalSize:
    rows: int
    cols: int

    @classmethod
    def from_query(cls, query: Any) -> "TerminalSize":
        return cls(_dimension(query.get("rows"), "rows", DEFAULT_ROWS), _dimension(query.get("cols"), "cols", DEFAULT_COLS))

    @classmethod
    def from_resize(cls, message: dict[str, Any]) -> "TerminalSize":
        """The size a ``resize`` control message asks for."""
        return cls(
            _dimension(str(message.get("rows", "")), "rows", DEFAULT_ROWS),
            _dimension(str(message.get("cols", "")), "cols", DEFAULT_COLS),
        )


def _dimension(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a whole number") from None
    if not 1 <= value <= MAX_DIMENSION:
        raise InvalidRequest(f"{name} must be between 1 and {MAX_DIMENSION}")
    return value


def resize_message(rows: int, cols: int) -> str:
    return json.dumps({"type": RESIZE, "rows": rows, "cols": cols})


def parse_control(text: str) -> dict[str, Any]:
    """A control message as a dict (``{"type": ...}``); a malformed one raises ``InvalidRequest``."""
    try:
        message = json.loads(text)
    except ValueError:
        raise InvalidRequest("terminal control messages are JSON objects") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise InvalidRequest("terminal control messages are JSON objects with a type")
    return message
