"""Launching from the web UI onto real containers, in a real browser (Debian's chromium via Playwright): a
manager serving the built UI and an agent on the local Docker engine with mock GPUs (DGX A100 topology).

A 0.25 GPU share launched from the form reaches RUNNING without a reload and the launch form's capacity table
shows that device's free share down by 0.25; JupyterLab opens through the app proxy in a new tab from the
session page's Open button (the jupyter image, built once like tests/integration/spine/test_jupyter_proxy.py).
Screenshots: the test's tmp dir, or test-artifacts/ with CORRAL_TEST_ARTIFACTS=1.
"""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.spine.cluster import BASE_IMAGE, LiveCluster
# The same image fixture as the app proxy's integration test (builds corral/jupyter once, then reuses it).
from tests.integration.spine.test_jupyter_proxy import jupyter_image  # noqa: F401

from .browser_pages import new_page, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.docker]

RUNNING_TIMEOUT_MS = 120_000




async def test_quarter_gpu_from_the_form_runs_and_the_capacity_table_follows(
    ui: LiveCluster, browser: Any, artifacts: Path
) -> None:
    from playwright.async_api import expect

    client = ui.client()
    page = await new_page(browser)
    await sign_in(page, ui)
    await page.evaluate("window.__sameDocument = true")
    nav = page.get_by_role("navigation", name="Main")
    await nav.get_by_role("link", name="Launch").click()
    table = page.get_by_role("table", name="Free now in default")
    shares = table.locator("[data-gpu]")
    await expect(shares).to_have_count(8)
    assert await shares.evaluate_all("spans => spans.map(s => s.dataset.free)") == ["1"] * 8

    await page.get_by_label("Name (optional)").fill("quarter")
    await page.get_by_label("Image").select_option(BASE_IMAGE)
    await page.get_by_label("Memory").fill("128m")
    await page.get_by_label("A GPU share").check()
    await page.get_by_label("GPU share (0.01 steps)").fill("0.25")
    await expect(page.get_by_test_id("fit-wait")).to_have_count(0)  # it fits now
    await page.screenshot(path=str(artifacts / "01-launch-quarter.png"), full_page=True)
    await page.get_by_role("button", name="Launch session").click()
    await expect(page.get_by_role("heading", name=re.compile("quarter"))).to_be_visible()
    await expect(page.get_by_test_id("session-status")).to_have_text("RUNNING", timeout=RUNNING_TIMEOUT_MS)
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    session = await client.get_session("quarter")
    [gpu] = session.kernels[0].allocation["gpus"]
    assert Decimal(gpu["share"]) == Decimal("0.25")
    await page.screenshot(path=str(artifacts / "02-quarter-running.png"), full_page=True)

    # Back on the form: that device has 0.75 free, the others are untouched.
    await nav.get_by_role("link", name="Launch").click()
    device = table.locator(f"[data-gpu='{gpu['index']}']")
    await expect(device).to_have_attribute("data-free", "0.75")
    await expect(device).to_have_text(f"{gpu['index']}: 0.75")
    frees = await shares.evaluate_all("spans => spans.map(s => [Number(s.dataset.gpu), s.dataset.free])")
    assert sorted(free for index, free in frees if index != gpu["index"]) == ["1"] * 7
    await expect(table.locator("tbody tr")).to_contain_text("7 / 8")  # 7 GPUs still fully free
    await page.screenshot(path=str(artifacts / "03-capacity-after.png"), full_page=True)

    await client.destroy_session(session.id)
    await client.wait_for_status(session.id, {"TERMINATED"}, timeout=60)
    assert not page.corral_errors, page.corral_errors


@pytest.mark.timeout(900)
async def test_open_jupyterlab_in_a_new_tab(
    ui: LiveCluster, browser: Any, artifacts: Path, jupyter_image: str  # noqa: F811
) -> None:
    from playwright.async_api import expect

    client = ui.client()
    session = await client.create_session(name="lab", image=jupyter_image, resources={"mem": "1g"})
    page = await new_page(browser)
    await sign_in(page, ui)
    await page.locator("tr[data-session='lab']").get_by_role("link", name="lab").click()
    await expect(page.get_by_test_id("session-status")).to_have_text("RUNNING", timeout=RUNNING_TIMEOUT_MS)
    open_button = page.get_by_role("button", name="Open jupyterlab")
    await expect(open_button).to_be_visible(timeout=30_000)
    await page.screenshot(path=str(artifacts / "01-session-services.png"), full_page=True)

    async with page.context.expect_page() as opened:
        await open_button.click()
    lab = await opened.value
    lab.set_default_timeout(120_000)
    # The one-time link is exchanged for the app cookie, then JupyterLab's own page loads through the proxy.
    await lab.wait_for_url(re.compile(rf"/api/v1/sessions/{session.id}/services/jupyterlab/http/"))
    await expect(lab.locator("#jp-main-dock-panel")).to_be_visible()
    await expect(lab).to_have_title(re.compile("JupyterLab"))
    assert "corral_token" not in lab.url  # the token does not linger in the address bar
    assert await lab.evaluate("window.opener === null")
    await lab.screenshot(path=str(artifacts / "02-jupyterlab.png"))

    await client.destroy_session(session.id)
    await client.wait_for_status(session.id, {"TERMINATED"}, timeout=60)
    assert not page.corral_errors, page.corral_errors
