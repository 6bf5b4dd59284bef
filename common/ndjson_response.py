"""Relaying an async stream of JSON events as an NDJSON HTTP response."""
from __future__ import annotations

import json
from typing import Any, AsyncGenerator

from aiohttp import web

NDJSON = "application/x-ndjson"


async def stream_ndjson(request: web.Request, events: AsyncGenerator[dict[str, Any], None]) -> web.StreamResponse:
    """Send ``events`` one JSON object per line.

    The first event is awaited before the response starts, so a failure
    before any output still becomes a proper problem response. A client that
    hangs up stops the upstream generator.
    """
    first = await anext(events)
    response = web.StreamResponse(headers={"Content-Type": NDJSON})
    await response.prepare(request)
    try:
        await response.write(json.dumps(first).encode() + b"\n")
        async for event in events:
            await response.write(json.dumps(event).encode() + b"\n")
    except ConnectionResetError:
        await events.aclose()
        return response
    await response.write_eof()
    return response
