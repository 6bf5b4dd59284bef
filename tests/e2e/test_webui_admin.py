"""The web UI's live session list, its admin pages (users, projects) and its access rules, in a real browser
(Debian's chromium via Playwright) against a live manager serving the built UI. No Docker: the sessions are
placed in a resource group without agents, so they stay PENDING until destroyed (CANCELLED at once).
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from tests.integration.spine.cluster import LiveCluster

from .browser_pages import new_page, sign_in
from .conftest import ADMIN_PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NOWHERE = {"resource_group": "nowhere", "resources": {"mem": "64m"}}
CAROL_PASSWORD = "carol-password-5678"


@pytest.fixture
async def ui(browser_ready: None, tmp_path: Path) -> AsyncIterator[LiveCluster]:
    from corral.manager.passwords import set_user_password

    cluster = LiveCluster(db_url=f"sqlite:///{tmp_path / 'corral.db'}")
    try:
        await cluster.start_manager()
        await set_user_password(cluster.manager.sessionmaker, "admin", ADMIN_PASSWORD)
        await cluster.client().create_resource_group("nowhere")  # no agent there: its sessions stay PENDING
        yield cluster
    finally:
        await cluster.stop()


async def test_list_follows_status_changes_without_a_reload(ui: LiveCluster, browser: Any) -> None:
    from playwright.async_api import expect

    client = ui.client()
    first = await client.create_session(name="watched", **NOWHERE)
    page = await new_page(browser)
    await sign_in(page, ui)
    row = page.locator("tr[data-session='watched']")
    await expect(row).to_contain_text("PENDING")
    await page.get_by_label("Show ended sessions").check()
    await expect(page.get_by_test_id("live-state")).to_have_text("live")
    await page.evaluate("window.__sameDocument = true")

    started = time.monotonic()
    await client.destroy_session(first.id)
    await expect(row).to_contain_text("CANCELLED", timeout=1000)
    assert time.monotonic() - started < 1.5

    # A new session shows up too, without waiting for the (15 s) safety refetch.
    await client.create_session(name="newcomer", **NOWHERE)
    await expect(page.locator("tr[data-session='newcomer']")).to_contain_text("PENDING", timeout=2000)
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    assert not page.corral_errors, page.corral_errors


async def test_non_admin_access_csrf_and_other_users_sessions(ui: LiveCluster, browser: Any) -> None:
    from playwright.async_api import expect

    from corral.manager.passwords import set_user_password

    admins = await ui.client().create_session(name="admins-own", **NOWHERE)
    await ui.add_user("carol")
    await set_user_password(ui.manager.sessionmaker, "carol", CAROL_PASSWORD)
    page = await new_page(browser)
    await sign_in(page, ui, "carol", CAROL_PASSWORD)

    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Sessions")).to_be_visible()
    for admin_only in ("Agents", "Users", "Projects"):
        await expect(nav.get_by_role("link", name=admin_only)).to_have_count(0)
    await page.goto(ui.manager.url + "/admin/users")
    await expect(page.get_by_role("heading", name="Admins only")).to_be_visible()
    await expect(page.get_by_role("table", name="Users")).to_have_count(0)

    # The API refuses too, whatever the page shows.
    statuses = await page.evaluate("""async () => {
        const s = await (await fetch('/api/v1/auth/session')).json();
        const users = await fetch('/api/v1/users');
        const make = await fetch('/api/v1/users', {method: 'POST', headers: {'Content-Type': 'application/json',
            'X-CSRF-Token': s.csrf_token}, body: JSON.stringify({username: 'mallory'})});
        const allUsers = await fetch('/api/v1/sessions?all_users=1');
        return [users.status, make.status, allUsers.status];
    }""")
    assert statuses == [403, 403, 403], statuses

    # CSRF: with the cookie but without the X-CSRF-Token header, a POST is refused.
    no_token = await page.evaluate("""async () => {
        const r = await fetch('/api/v1/sessions', {method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({resource_group: 'nowhere'})});
        return r.status;
    }""")
    assert no_token == 403

    # Another user's session: "not found", not its details.
    await page.goto(ui.manager.url + f"/sessions/{admins.id}")
    await expect(page.get_by_role("alert")).to_contain_text("not found", ignore_case=True)
    await expect(page.get_by_text("admins-own")).to_have_count(0)
    assert not page.corral_errors, page.corral_errors


async def test_create_user_with_password_then_sign_in_as_them(ui: LiveCluster, browser: Any) -> None:
    from playwright.async_api import expect

    page = await new_page(browser)
    await sign_in(page, ui)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    await expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    await page.get_by_label("Username").fill("dave")
    await page.get_by_label("Password (optional: lets them sign in here)").fill("dave-password-0001")
    await page.get_by_role("button", name="Create user").click()
    row = page.locator("tr[data-user='dave']")
    await expect(row).to_contain_text("password set")
    await expect(page.get_by_role("status")).to_contain_text("secret key")

    # Reset the password from the keyboard, then disable and enable again.
    await page.get_by_role("button", name="Reset password of dave").focus()
    await page.keyboard.press("Enter")
    await page.get_by_label("New password for dave").fill("dave-password-0002")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_contain_text("Password of dave set")
    await page.get_by_role("button", name="Disable dave").click()
    await expect(row).to_contain_text("disabled")
    await page.get_by_role("button", name="Enable dave").click()
    await expect(row).to_contain_text("active")

    other = await new_page(browser)
    await sign_in(other, ui, "dave", "dave-password-0002")
    await expect(other.get_by_role("banner")).to_contain_text("dave")
    assert not page.corral_errors and not other.corral_errors, page.corral_errors + other.corral_errors


async def test_projects_page_members(ui: LiveCluster, browser: Any) -> None:
    from playwright.async_api import expect

    await ui.add_user("erin")
    page = await new_page(browser)
    await sign_in(page, ui)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Projects").click()
    await page.get_by_label("Project name").fill("vision")
    await page.get_by_label("Description").fill("image models")
    await page.get_by_role("button", name="Create project").click()
    await expect(page.locator("tr[data-project='vision']")).to_contain_text("image models")
    members = page.get_by_role("table", name="Members of vision")
    await expect(members).to_be_visible()
    await page.get_by_label("Member username").fill("erin")
    await page.get_by_label("Member role").select_option("manager")
    await page.get_by_role("button", name="Add member").click()
    await expect(members.locator("tr[data-member='erin']")).to_be_visible()
    await expect(page.get_by_label("Role of erin")).to_have_value("manager")
    await page.get_by_label("Role of erin").select_option("member")
    await expect(page.get_by_label("Role of erin")).to_have_value("member")
    # The select shows the new role at once; the change reaches the manager with the request it sends.
    roles: dict[str, str] = {}
    for _ in range(50):
        project = await ui.client().get_project("vision")
        roles = {m.username: m.role for m in project.members}
        if roles.get("erin") == "member":
            break
        await asyncio.sleep(0.1)
    assert roles.get("erin") == "member"
    await page.get_by_role("button", name="Remove erin from vision").click()
    await expect(members.locator("tr[data-member='erin']")).to_have_count(0)
    assert not page.corral_errors, page.corral_errors
