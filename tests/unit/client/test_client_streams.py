"""Line splitting, NDJSON and server-sent event parsing."""
from __future__ import annotations

import json
from typing import AsyncIterator, Iterable

from corral.client.streams import ServerSentEvent, iter_lines, iter_ndjson, iter_sse


async def chunks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(agen):  # type: ignore[no-untyped-def]
    return [item async for item in agen]


async def test_lines_split_across_chunks_and_crlf() -> None:
    lines = await collect(iter_lines(chunks([b"ab", b"c\r\nde", b"f\n\ng", b"h"])))
    assert lines == ["abc", "def", "", "gh"]


async def test_ndjson_line_larger_than_aiohttp_buffer() -> None:
    big = "x" * (1 << 20)
    body = (json.dumps({"op": "output", "data": big}) + "\n").encode()
    pieces = [body[i:i + 1000] for i in range(0, len(body), 1000)]
    events = await collect(iter_ndjson(chunks(pieces + [b"\n", b'{"op":"result"}'])))
    assert events[0]["data"] == big and events[1] == {"op": "result"}


async def test_sse_events_comments_multiline_and_ids() -> None:
    text = (
        ": keep-alive\n\n"
        "event: status\ndata: {\"status\": \"PENDING\"}\nid: 1\n\n"
        "data: line one\ndata:line two\n\n"
        "event: ignored-without-data\n\n"
        "retry: 1000\nevent: status\r\ndata: {\"status\": \"RUNNING\"}\r\n\r\n"
    )
    events = await collect(iter_sse(iter_lines(chunks([text.encode()[i:i + 7] for i in range(0, len(text), 7)]))))
    assert events == [
        ServerSentEvent("status", '{"status": "PENDING"}', "1"),
        ServerSentEvent("message", "line one\nline two", "1"),
        ServerSentEvent("status", '{"status": "RUNNING"}', "1"),
    ]
    assert events[2].json() == {"status": "RUNNING"}


async def test_sse_last_event_without_blank_line_is_kept() -> None:
    events = await collect(iter_sse(iter_lines(chunks([b"event: status\ndata: {}"]))))
    assert events == [ServerSentEvent("status", "{}", None)]
