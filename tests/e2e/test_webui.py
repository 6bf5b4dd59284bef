"""The web UI in a real browser (Debian's chromium via Playwright) against a live stack: a manager serving
the built UI, an agent on the local Docker engine with mock GPUs (DGX A100 topology).

Sign-in goes through the real sign-in API with a password set for the admin; sessions are real containers.
Screenshots: the test's tmp dir, or test-artifacts/ with CORRAL_TEST_ARTIFACTS=1.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.spine.cluster import BASE_IMAGE, LiveCluster

from .browser_pages import new_page, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.docker]

PHONE = {"width": 390, "height": 844}
RUNNING_TIMEOUT_MS = 120_000




async def test_sign_in_list_launch_terminal_destroy(ui: LiveCluster, browser: Any, artifacts: Path) -> None:
    from playwright.async_api import expect

    client = ui.client()
    existing = await ui.client().create_session(name="from-cli", resources={"mem": "128m"})

    page = await new_page(browser)
    # A wrong password is refused next to the form.
    await page.goto(ui.manager.url + "/")
    await page.get_by_label("Username").fill("admin")
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    await page.screenshot(path=str(artifacts / "01-sign-in-refused.png"))

    await sign_in(page, ui)
    # The list renders, and follows the CLI-made session to RUNNING without a reload.
    row = page.locator("tr[data-session='from-cli']")
    await expect(row).to_be_visible()
    await expect(row).to_contain_text(BASE_IMAGE)
    await expect(row).to_contain_text("128 MiB")
    await expect(row).to_contain_text("RUNNING", timeout=RUNNING_TIMEOUT_MS)
    await page.screenshot(path=str(artifacts / "02-sessions.png"))

    # Launch from the form; its page follows it to RUNNING.
    await page.get_by_role("link", name="Launch", exact=True).first.click()
    await expect(page.get_by_role("heading", name="Launch a session")).to_be_visible()
    await page.get_by_label("Name (optional)").fill("from-webui")
    await page.get_by_label("Image").select_option(BASE_IMAGE)
    await page.get_by_label("Memory").fill("128m")
    await page.get_by_label("Environment (KEY=VALUE, one a line)").fill("GREETING=hi")
    await page.screenshot(path=str(artifacts / "03-launch.png"))
    await page.get_by_role("button", name="Launch session").click()
    await expect(page.get_by_role("heading", name=re.compile("from-webui"))).to_be_visible()
    await expect(page.get_by_test_id("session-status")).to_have_text("RUNNING", timeout=RUNNING_TIMEOUT_MS)
    session = await client.get_session("from-webui")
    assert session.env.get("GREETING") == "hi" and session.image == BASE_IMAGE

    # Back in the list it is RUNNING too; open its page from there.
    await page.get_by_role("link", name="← Sessions").click()
    await expect(page.locator("tr[data-session='from-webui']")).to_contain_text("RUNNING")
    await page.get_by_role("link", name="from-webui").click()
    await expect(page.get_by_role("heading", name="Status history")).to_be_visible()
    await expect(page.get_by_role("list", name="Status history")).to_contain_text("RUNNING")

    # The terminal: a real shell over the websocket.
    await expect(page.get_by_test_id("terminal-state")).to_contain_text("connected", timeout=30_000)
    await page.get_by_test_id("terminal").click()
    await page.keyboard.type("echo h''i\n")
    rows = page.locator(".xterm-rows > div")
    await expect(rows.filter(has_text=re.compile(r"^\s*hi\s*$"))).to_have_count(1, timeout=20_000)
    await page.screenshot(path=str(artifacts / "04-session-terminal.png"), full_page=True)

    # Destroy (confirmed in the dialog).
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Destroy").click()
    await expect(page.get_by_test_id("session-status")).to_have_text(
        re.compile("TERMINATING|TERMINATED"), timeout=30_000)
    await client.wait_for_status(session.id, {"TERMINATED"}, timeout=60)
    await client.destroy_session(existing.id)
    assert not page.corral_errors, page.corral_errors


async def test_admin_page_shows_gpu_link_matrix(ui: LiveCluster, browser: Any, artifacts: Path) -> None:
    from playwright.async_api import expect

    page = await new_page(browser)
    await sign_in(page, ui)
    await page.get_by_role("link", name="Agents").click()
    agent_id = ui.agents[0].config.id
    matrix = page.get_by_role("table", name=f"GPU link matrix of {agent_id}")
    await expect(matrix).to_be_visible()
    await expect(matrix.locator("td.link-nv")).to_have_count(8 * 7)  # NV12 between every pair
    await expect(matrix.locator("td.link-self")).to_have_count(8)
    gpus = page.get_by_role("table", name=f"GPUs of {agent_id}")
    await expect(gpus.locator("tbody tr")).to_have_count(8)
    await expect(gpus).to_contain_text("A100")
    colour = await matrix.locator("td.link-nv").first.evaluate("cell => getComputedStyle(cell).backgroundColor")
    assert colour not in ("", "rgba(0, 0, 0, 0)")
    await page.screenshot(path=str(artifacts / "05-admin-agents.png"), full_page=True)
    assert not page.corral_errors, page.corral_errors


async def test_session_list_at_phone_width(ui: LiveCluster, browser: Any, artifacts: Path) -> None:
    from playwright.async_api import expect

    await ui.client().create_session(name="phone", resources={"mem": "128m"})
    page = await new_page(browser, PHONE)
    await sign_in(page, ui)
    row = page.locator("tr[data-session='phone']")
    await expect(row).to_be_visible()
    # Stacked, labelled cells instead of columns.
    assert await row.locator("td").first.evaluate("td => getComputedStyle(td).display") == "block"
    assert await row.locator("td").nth(1).evaluate("td => getComputedStyle(td, '::before').content") == '"Status: "'
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, f"the list scrolls sideways at phone width ({width}px)"
    await page.get_by_role("link", name="phone").click()
    await expect(page.get_by_role("heading", name=re.compile("phone"))).to_be_visible()
    await page.screenshot(path=str(artifacts / "06-phone.png"), full_page=True)
