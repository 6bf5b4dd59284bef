"""Turning a streamed HTTP body into lines, NDJSON objects and server-sent events.

aiohttp's own ``readline`` refuses lines above its buffer size; program output
can put megabytes on one NDJSON line, so we split chunks ourselves.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, AsyncIterable, AsyncIterator


async def iter_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """Yield decoded lines without their ``\\n`` / ``\\r\\n``; a last unterminated line too."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.removesuffix(b"\r").decode("utf-8", errors="replace")
    if buffer:
        yield buffer.removesuffix(b"\r").decode("utf-8", errors="replace")


async def iter_ndjson(chunks: AsyncIterable[bytes]) -> AsyncIterator[dict[str, Any]]:
    async for line in iter_lines(chunks):
        if line.strip():
            doc = json.loads(line)
            if isinstance(doc, dict):
                yield doc


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


async def iter_sse(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    """Parse the text/event-stream format (WHATWG HTML §9.2.6) from lines.

    Comments (``:``-lines, used as keep-alives) are skipped; an event is
    dispatched at a blank line, and only if it carried data. Unlike a browser,
    an event cut off by the end of the stream is still delivered: a server that
    closes right after its last ``data:`` line must not lose the final status.
    """
    event = ""
    data: list[str] = []
    last_id: str | None = None
    async for line in lines:
        if line == "":
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data), last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            last_id = value
        # "retry" and unknown fields are ignored: we do not reconnect on our own.
    if data:
        yield ServerSentEvent(event or "message", "\n".join(data), last_id)
