"""The launch form's capacity table and its checks before submitting, and an admin's All users list, in a real
browser (Debian's chromium via Playwright) against a live manager serving the built UI. No Docker: the agent
runs on the dummy backend (no containers) with mock GPUs (DGX A100 topology), so its sessions hold real
allocations; other users' sessions wait in a resource group without agents.
Screenshots: the test's tmp dir, or test-artifacts/ with CORRAL_TEST_ARTIFACTS=1.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from tests.integration.spine.cluster import LiveCluster

from .browser_pages import new_page, sign_in
from .conftest import ADMIN_PASSWORD, REPO

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TOPOLOGY = str(REPO / "configs" / "gpus" / "dgx-a100.toml")
NOWHERE = {"resource_group": "nowhere", "resources": {"mem": "64m"}}
ERIN_PASSWORD = "erin-password-2468"


@pytest.fixture
async def ui(browser_ready: None, tmp_path: Path) -> AsyncIterator[LiveCluster]:
    from corral.agent.server import AgentServer
    from corral.manager.passwords import set_user_password

    cluster = LiveCluster(db_url=f"sqlite:///{tmp_path / 'corral.db'}")
    agent = None
    try:
        await cluster.start_manager()
        await set_user_password(cluster.manager.sessionmaker, "admin", ADMIN_PASSWORD)
        # Not cluster.start_agent: its teardown asks Docker for leftover containers.
        agent = AgentServer(cluster.agent_config(
            "sim", backend="dummy", gpu={"plugin": "mock", "topology": TOPOLOGY}, resources={"mem": "64g"},
        ))
        await agent.start()
        await agent.link.heartbeat_now()
        yield cluster
    finally:
        if agent is not None:
            await agent.stop()
        await cluster.stop()


async def test_launch_form_refuses_what_no_node_could_ever_fit(ui: LiveCluster, browser: Any, artifacts: Path) -> None:
    from playwright.async_api import expect

    client = ui.client()
    page = await new_page(browser)
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" and r.url.endswith("/api/v1/sessions")
            else None)
    await sign_in(page, ui)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Launch").click()
    await expect(page.get_by_label("Resource group")).to_have_value("default")
    table = page.get_by_role("table", name="Free now in default")
    await expect(table.locator("[data-gpu]")).to_have_count(8)
    await expect(table.locator("tbody tr")).to_contain_text("8 / 8")

    await page.get_by_label("Whole GPUs").check()
    await page.get_by_label("Number of GPUs").fill("64")
    await page.get_by_role("button", name="Launch session").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("could ever fit 64 whole GPUs: the largest has 8 GPUs")
    await expect(page.get_by_label("Number of GPUs")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Number of GPUs")).to_be_focused()
    await page.screenshot(path=str(artifacts / "01-refused-64-gpus.png"), full_page=True)
    assert posted == [] and (await client.list_sessions()).items == []  # refused in the page: nothing was sent

    # All eight taken: one more GPU fits the node's total, so the form warns it will wait but submits.
    held = await client.create_session(name="all-eight", resources={"mem": "1g", "cuda.device": "8"})
    await client.wait_for_status(held.id, {"RUNNING"}, timeout=30)
    await page.get_by_label("Number of GPUs").fill("1")
    await expect(table.locator("tbody tr")).to_contain_text("0 / 8", timeout=15_000)  # the table's own refresh
    notice = page.get_by_test_id("fit-wait")
    await expect(notice).to_have_text("Will wait in the queue: no node has a whole GPU free now.")
    await expect(page.get_by_role("alert")).to_have_count(0)
    await page.screenshot(path=str(artifacts / "02-will-wait.png"), full_page=True)
    await page.get_by_label("Name (optional)").fill("waiting")
    await page.get_by_role("button", name="Launch session").click()
    await expect(page.get_by_role("heading", name=re.compile("waiting"))).to_be_visible()
    await expect(page.get_by_test_id("session-status")).to_have_text("PENDING")
    assert len(posted) == 1
    waiting = await client.get_session("waiting")

    # The queue moves once the GPUs are free again; the table follows.
    await client.destroy_session(held.id)
    await client.wait_for_status(waiting.id, {"RUNNING"}, timeout=30)
    await client.destroy_session(waiting.id)
    assert not page.corral_errors, page.corral_errors


async def test_admin_sees_every_users_sessions_with_all_users(ui: LiveCluster, browser: Any, artifacts: Path) -> None:
    from playwright.async_api import expect

    from corral.manager.passwords import set_user_password

    admin = ui.client()
    await admin.create_resource_group("nowhere")  # no agent there: its sessions stay PENDING
    await admin.create_session(name="admins-own", **NOWHERE)
    erin = ui.client(*await ui.add_user("erin"))
    await set_user_password(ui.manager.sessionmaker, "erin", ERIN_PASSWORD)
    theirs = await erin.create_session(name="erins", **NOWHERE)

    page = await new_page(browser)
    await sign_in(page, ui)
    await expect(page.locator("tr[data-session='admins-own']")).to_be_visible()
    await expect(page.locator("tr[data-session='erins']")).to_have_count(0)
    await expect(page.get_by_role("columnheader", name="Owner")).to_have_count(0)

    await page.get_by_label("All users").check()
    row = page.locator("tr[data-session='erins']")
    await expect(row).to_contain_text("PENDING")
    await expect(page.get_by_role("columnheader", name="Owner")).to_be_visible()
    await expect(row.locator("td[data-label='Owner']")).to_have_text("erin")
    await expect(page.locator("tr[data-session='admins-own'] td[data-label='Owner']")).to_have_text("admin")
    await expect(page.get_by_test_id("live-state")).to_have_text("live")
    await page.screenshot(path=str(artifacts / "03-all-users.png"), full_page=True)

    # Live for other users' sessions too: erin's session ends, and a new one of hers shows up, without a reload.
    await page.get_by_label("Show ended sessions").check()
    await page.evaluate("window.__sameDocument = true")
    await erin.destroy_session(theirs.id)
    await expect(row).to_contain_text("CANCELLED", timeout=5000)
    await erin.create_session(name="erins-next", **NOWHERE)
    await expect(page.locator("tr[data-session='erins-next']")).to_contain_text("PENDING", timeout=5000)
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"

    # An admin may open another user's session from the list.
    await page.locator("tr[data-session='erins-next']").get_by_role("link", name="erins-next").click()
    await expect(page.get_by_role("heading", name=re.compile("erins-next"))).to_be_visible()
    # Back in the list, the choice stays.
    await page.go_back()
    await expect(page.get_by_label("All users")).to_be_checked()
    await expect(page.locator("tr[data-session='erins-next']")).to_be_visible()

    # Erin herself gets no such toggle.
    other = await new_page(browser)
    await sign_in(other, ui, "erin", ERIN_PASSWORD)
    await expect(other.locator("tr[data-session='erins-next']")).to_be_visible()
    await expect(other.get_by_label("All users")).to_have_count(0)
    assert not page.corral_errors and not other.corral_errors, page.corral_errors + other.corral_errors
