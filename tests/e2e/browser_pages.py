"""What the browser tests share: a fresh page that collects page errors and CSP violations, and signing in."""
from __future__ import annotations

from typing import Any

from tests.integration.spine.cluster import LiveCluster

from .conftest import ADMIN_PASSWORD

DESKTOP = {"width": 1280, "height": 800}


async def new_page(browser: Any, viewport: dict[str, int] = DESKTOP) -> Any:
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A Content-Security-Policy violation (something the UI needs but the manager's CSP forbids).
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.corral_errors = errors  # type: ignore[attr-defined]
    return page


async def sign_in(page: Any, cluster: LiveCluster, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    from playwright.async_api import expect

    await page.goto(cluster.manager.url + "/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
