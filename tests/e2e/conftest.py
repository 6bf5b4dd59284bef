"""Fixtures for the web UI's browser tests (test_webui.py): a live cluster, Playwright on Debian's chromium.

The browser is always /usr/bin/chromium (never one Playwright downloads). Without it, or without the
Python ``playwright`` package, the browser tests skip with the reason (they fail in CI / strict mode).
"""
from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from tests.fixtures import strict_mode

CHROMIUM = os.environ.get("CORRAL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "manager" / "webui" / "dist"
ADMIN_PASSWORD = "webui-e2e-password-1234"
TOPOLOGY = str(REPO / "configs" / "gpus" / "dgx-a100.toml")


def _unavailable(reason: str) -> None:
    if strict_mode():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def base_image(docker_engine: str) -> str:
    from corral.kernels.builder import build_image

    from tests.integration.spine.cluster import BASE_IMAGE

    asyncio.run(build_image("python"))
    return BASE_IMAGE


@pytest.fixture
def browser_ready() -> None:
    """Chromium, the playwright package, a built UI and the sign-in API, or a skip saying which is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is missing (make node-deps installs it)")
    if importlib.util.find_spec("playwright") is None:
        _unavailable("the playwright package is missing (pip install -e '.[dev]')")
    if not (DIST / "index.html").is_file():
        _unavailable("the web UI is not built (make webui)")
    if importlib.util.find_spec("corral.manager.api.auth") is None:
        pytest.skip("waiting for the sign-in API (manager/api/auth.py)")


@pytest.fixture
async def browser(browser_ready: None) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where screenshots go: test-artifacts/<test>/ when CORRAL_TEST_ARTIFACTS=1 (CI), else the test's tmp dir."""
    if os.environ.get("CORRAL_TEST_ARTIFACTS", "").strip() not in ("", "0"):
        folder = REPO / "test-artifacts" / request.node.name.replace("/", "_")
    else:
        folder = tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def ui(browser_ready: None, base_image: str, tmp_path: Path) -> AsyncIterator[Any]:
    """A manager and a Docker agent with a mock DGX A100 (8 GPUs), the admin's web password set.
    (Test files that need another cluster define their own ``ui``.)"""
    from corral.manager.passwords import set_user_password
    from tests.integration.spine.cluster import LiveCluster

    cluster = LiveCluster(db_url=f"sqlite:///{tmp_path / 'corral.db'}", heartbeat_timeout_s=5.0)
    try:
        await cluster.start_manager()
        await cluster.start_agent(gpu={"plugin": "mock", "topology": TOPOLOGY})
        await set_user_password(cluster.manager.sessionmaker, "admin", ADMIN_PASSWORD)
        yield cluster
    finally:
        await cluster.stop()
