"""The web UI: the built single-page app (manager/webui/dist) served at ``/``.

Every GET/HEAD outside ``/api/`` and ``/internal/`` that is not a file of the
build answers ``index.html`` (the app routes in the browser). Hashed build
output under ``/assets/`` is cached for a year; ``index.html`` is revalidated
on every load, so a new build shows up at once. A missing ``/assets/`` file is
a 404, not ``index.html``: a stale page asking for an old chunk should fail
plainly. Without a build, ``/`` answers a short page saying how to make one.
"""
from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

# corral/manager/webui/dist: built by `make webui`, shipped as package data.
DEFAULT_DIST = Path(__file__).resolve().parent.parent / "webui" / "dist"
DIST_ENV = "CORRAL_WEBUI_DIST"  # another build folder (e.g. while developing the UI)

CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}
RESERVED_PREFIXES = ("/api/", "/internal/")
RESERVED_EXACT = ("/api", "/internal")

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Corral</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5">
<h1>Corral manager</h1>
<p>The web UI has not been built. From a source checkout run <code>make webui</code>
(Node.js 20+; it runs <code>npm ci</code> and <code>npm run build</code> in
<code>manager/webui/</code>), then reload this page. The API is at
<a href="/api/v1/openapi.json"><code>/api/v1/openapi.json</code></a> and the
<code>corral</code> CLI works without the UI.</p>
</body></html>
"""


def webui_dist() -> Path:
    return Path(os.environ[DIST_ENV]) if os.environ.get(DIST_ENV) else DEFAULT_DIST


def _headers(cache_control: str, content_type: str | None = None) -> dict[str, str]:
    headers = {**SECURITY_HEADERS, "Cache-Control": cache_control}
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def _file_in(dist: Path, rel: str) -> Path | None:
    """The regular file ``rel`` names inside ``dist``, or None (never anything outside it)."""
    if not rel or "\x00" in rel:
        return None
    try:
        candidate = (dist / rel).resolve()
    except (OSError, ValueError):
        return None
    if candidate != dist and dist in candidate.parents and candidate.is_file():
        return candidate
    return None


def make_handler(dist: Path | None = None):
    async def serve_webui(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in RESERVED_EXACT or path.startswith(RESERVED_PREFIXES):
            raise web.HTTPNotFound()
        root = (dist or webui_dist()).resolve()
        index = root / "index.html"
        if not index.is_file():
            return web.Response(text=NOT_BUILT, headers=_headers(NO_CACHE, "text/html; charset=utf-8"))
        rel = path.lstrip("/")
        found = _file_in(root, rel)
        if found is not None and found != index:
            hashed = rel.startswith("assets/")
            content_type = CONTENT_TYPES.get(found.suffix.lower())
            response = web.FileResponse(found, headers=_headers(IMMUTABLE if hashed else NO_CACHE, content_type))
            return response
        if rel.startswith("assets/"):
            raise web.HTTPNotFound()
        return web.FileResponse(index, headers=_headers(NO_CACHE, CONTENT_TYPES[".html"]))

    return serve_webui


def add_webui_routes(app: web.Application, dist: Path | None = None) -> None:
    """Register the UI's catch-all GET route; call after every API route."""
    app.router.add_get("/{tail:.*}", make_handler(dist), name="webui")
