"""Usage and recursive listing over HTTP, with NDJSON progress for long walks.

``GET …/usage?path=P`` answers one JSON document. With ``progress=1`` (or
``Accept: application/x-ndjson``) it streams lines instead:
``{"type": "progress", …totals, "elapsed_s"}`` every half second, then
``{"type": "result", …totals, "elapsed_s"}`` (or ``{"type": "error", "problem"}``).

``GET …/tree?path=P`` always streams NDJSON: ``{"type": "entries", "entries":
[[path, type, size, mtime], …]}`` batches (paths relative to P, unordered),
progress lines when ``progress=1``, then the ``result`` line. ``stat=0`` skips
the per-entry stat (names and types only, like ``find``; sizes are 0), which
on a network filesystem saves one round trip per entry.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time

from aiohttp import web

from corral.common.errors import CorralError

from .auth import require_vfolder_claims
from .context import get_context
from .paths import join_parts, parse_vfolder_path
from .walk import ParallelWalker, WalkCancelled, WalkEntry, WalkTotals

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
PROGRESS_INTERVAL_S = 0.5
ENTRIES_PER_LINE = 2000
ENTRY_QUEUE_BATCHES = 256


def _wants_progress(request: web.Request) -> bool:
    return request.query.get("progress", "").lower() in ("1", "true", "yes") or NDJSON in request.headers.get("Accept", "")


def _line(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def _totals_doc(kind: str, totals: WalkTotals, started: float, path: str) -> dict[str, object]:
    return {"type": kind, "path": path, **totals.to_json(), "elapsed_s": round(time.monotonic() - started, 3)}


def _open_walker(request: web.Request, *, with_entries: "asyncio.Queue[list[WalkEntry]] | None") -> tuple[ParallelWalker, str]:
    ctx = get_context(request)
    vfid = request.match_info["vfid"]
    claims = require_vfolder_claims(request, ctx.config.jwt_secret, vfid, write=False)
    volume = ctx.volume(claims.volume)
    parts = parse_vfolder_path(request.query.get("path", ""))
    sink = None
    if with_entries is not None:
        loop = asyncio.get_running_loop()
        walker_ref: list[ParallelWalker] = []

        def sink(batch: list[WalkEntry]) -> None:
            # Called from walker threads; blocks (backpressure) while the client is slow.
            future = asyncio.run_coroutine_threadsafe(with_entries.put(batch), loop)
            while True:
                try:
                    future.result(timeout=1.0)
                    return
                except concurrent.futures.TimeoutError:
                    if walker_ref and walker_ref[0].cancelled:
                        future.cancel()
                        raise WalkCancelled() from None

        stat_entries = request.query.get("stat", "1").lower() not in ("0", "false", "no")
        walker = volume.walker(vfid, parts, entry_sink=sink, stat_entries=stat_entries)
        walker_ref.append(walker)
    else:
        walker = volume.walker(vfid, parts)
    return walker, join_parts(parts)


async def _stream(
    request: web.Request,
    walker: ParallelWalker,
    path: str,
    *,
    progress: bool,
    entries: "asyncio.Queue[list[WalkEntry]] | None",
) -> web.StreamResponse:
    started = time.monotonic()
    response = web.StreamResponse(headers={"Content-Type": NDJSON, "Cache-Control": "no-store"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    task = asyncio.ensure_future(walker.run_async())
    next_tick = started + PROGRESS_INTERVAL_S
    try:
        while True:
            timeout = max(0.0, next_tick - time.monotonic()) if progress else None
            getter = asyncio.ensure_future(entries.get()) if entries is not None else None
            waiting = {task} | ({getter} if getter else set())
            done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if getter is not None:
                if getter in done:
                    batch = getter.result()
                    while len(batch) < ENTRIES_PER_LINE and not entries.empty():  # type: ignore[union-attr]
                        batch.extend(entries.get_nowait())  # type: ignore[union-attr]
                    await response.write(_line({"type": "entries", "entries": [e.to_json() for e in batch]}))
                else:
                    getter.cancel()
            if progress and time.monotonic() >= next_tick:
                await response.write(_line(_totals_doc("progress", walker.snapshot(), started, path)))
                next_tick = time.monotonic() + PROGRESS_INTERVAL_S
            if task.done() and (entries is None or entries.empty()):
                break
        try:
            totals = task.result()
            await response.write(_line(_totals_doc("result", totals, started, path)))
        except CorralError as exc:
            await response.write(_line({"type": "error", "problem": exc.to_problem(instance=request.path)}))
        await response.write_eof()
    except BaseException:
        walker.cancel()
        task.cancel()
        raise
    return response


async def usage_handler(request: web.Request) -> web.StreamResponse:
    walker, path = _open_walker(request, with_entries=None)
    if not _wants_progress(request):
        started = time.monotonic()
        totals = await walker.run_async()
        doc = _totals_doc("result", totals, started, path)
        doc.pop("type")
        return web.json_response(doc)
    return await _stream(request, walker, path, progress=True, entries=None)


async def tree_handler(request: web.Request) -> web.StreamResponse:
    entries: asyncio.Queue[list[WalkEntry]] = asyncio.Queue(ENTRY_QUEUE_BATCHES)
    walker, path = _open_walker(request, with_entries=entries)
    return await _stream(request, walker, path, progress=_wants_progress(request), entries=entries)
