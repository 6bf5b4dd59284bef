"""How the manager serves the web UI (manager/api/webui.py): SPA fallback, content types, caching, CSP."""
from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from corral.common.http_problems import make_problem_middleware
from corral.manager.api.webui import CSP, add_webui_routes


def make_app(dist: Path) -> web.Application:
    app = web.Application(middlewares=[make_problem_middleware("manager")])

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/api/v1/health", health)
    add_webui_routes(app, dist)
    return app


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>Corral</title><div id=app></div>")
    (root / "assets" / "index-abc123.js").write_text("console.log(1)")
    (root / "assets" / "index-abc123.css").write_text("body{}")
    (tmp_path / "secret.txt").write_text("outside")
    return root


async def test_index_assets_and_spa_fallback(aiohttp_client, dist: Path) -> None:
    client = await aiohttp_client(make_app(dist))

    for path in ("/", "/sessions/abc", "/admin", "/launch?x=1"):
        response = await client.get(path)
        assert response.status == 200, path
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["Content-Security-Policy"] == CSP
        assert "id=app" in await response.text()

    js = await client.get("/assets/index-abc123.js")
    assert js.status == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert "immutable" in js.headers["Cache-Control"] and "max-age=31536000" in js.headers["Cache-Control"]
    css = await client.get("/assets/index-abc123.css")
    assert css.headers["Content-Type"].startswith("text/css")
    assert (await client.head("/")).status == 200


async def test_api_paths_and_missing_assets_are_not_the_app(aiohttp_client, dist: Path) -> None:
    client = await aiohttp_client(make_app(dist))
    assert (await (await client.get("/api/v1/health")).json()) == {"status": "ok"}
    for path in ("/api/v1/nope", "/api", "/internal/v1/x", "/assets/gone-123.js"):
        response = await client.get(path)
        assert response.status == 404, path
        assert response.headers["Content-Type"].startswith("application/problem+json"), path
    # No way out of dist/.
    response = await client.get("/..%2Fsecret.txt")
    assert "outside" not in await response.text()
    response = await client.get("/assets/../../secret.txt")
    assert "outside" not in await response.text()


async def test_without_a_build_the_root_says_how_to_make_one(aiohttp_client, tmp_path: Path) -> None:
    client = await aiohttp_client(make_app(tmp_path / "no-dist"))
    response = await client.get("/")
    assert response.status == 200
    assert "make webui" in await response.text()
    assert (await client.get("/api/v1/health")).status == 200
