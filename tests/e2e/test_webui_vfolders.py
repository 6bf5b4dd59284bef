"""The Vfolders pages in a real browser (Debian's chromium via Playwright) against a live manager and storage
proxy (no agents, no Docker): create a vfolder, upload a 50 MB file through the manager's relay with tus,
reload mid-upload and resume (the proxy receives about the file's size in all, not more), see it listed,
share it read-only with a second user who sees it without any way to write.

The proxy's reading of upload bodies is slowed (10 MB/s) so the reload lands mid-upload on any machine.
Screenshots: the test's tmp dir, or test-artifacts/ with CORRAL_TEST_ARTIFACTS=1.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from tests.integration.spine.cluster import LiveCluster

from .conftest import ADMIN_PASSWORD
from .browser_pages import new_page, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SIZE = 50 * 1000 * 1000
BYTES_PER_S = 10_000_000
CHUNK = 8 * 1024 * 1024  # the UI's tus chunk size
BOB_PASSWORD = "bob-webui-password-5678"


@pytest.fixture
async def stack(browser_ready: None, tmp_path: Path) -> AsyncIterator[LiveCluster]:
    from corral.manager.passwords import set_user_password

    cluster = LiveCluster(db_url=f"sqlite:///{tmp_path / 'corral.db'}", heartbeat_timeout_s=5.0)
    try:
        await cluster.start_storage()
        await cluster.start_manager()
        await set_user_password(cluster.manager.sessionmaker, "admin", ADMIN_PASSWORD)
        await cluster.client().create_user("bob", "user", BOB_PASSWORD)
        yield cluster
    finally:
        await cluster.stop()


def throttle_uploads(cluster: LiveCluster) -> Any:
    uploads = cluster.storage.context.uploads
    original = uploads.append

    async def slow(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for piece in pieces:
            await asyncio.sleep(len(piece) / BYTES_PER_S)
            yield piece

    async def append(info: Any, offset: int, chunks: AsyncIterator[bytes], checksum: Any) -> int:
        return await original(info, offset, slow(chunks), checksum)

    uploads.append = append
    return uploads


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_create_upload_resume_after_reload_and_share_read_only(
        stack: LiveCluster, browser: Any, artifacts: Path, tmp_path: Path) -> None:
    from playwright.async_api import expect

    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(SIZE)
    uploads = throttle_uploads(stack)

    page = await new_page(browser)
    await sign_in(page, stack, "admin", ADMIN_PASSWORD)
    await page.get_by_role("link", name="Vfolders").click()
    await page.get_by_label("Name", exact=True).fill("webdata")
    await page.get_by_label("Quota (optional, like 10g)").fill("1g")
    await page.get_by_role("button", name="Create vfolder").click()
    row = page.locator("tr[data-vfolder='webdata']")
    await expect(row).to_contain_text("1.0 GiB")
    await page.screenshot(path=str(artifacts / "01-vfolders.png"), full_page=True)
    await row.get_by_role("link", name="webdata").click()
    await expect(page.get_by_role("heading", name="Vfolder webdata")).to_be_visible()

    # Upload; reload once the proxy holds part of it.
    before = uploads.bytes_received
    await page.get_by_test_id("upload-files").set_input_files(str(big))
    await wait_for(lambda: uploads.bytes_received - before > SIZE // 4, 60, "a quarter of the upload")
    await page.screenshot(path=str(artifacts / "02-uploading.png"), full_page=True)
    await page.reload()
    interrupted = page.get_by_role("status", name="Interrupted uploads")
    await expect(interrupted).to_contain_text("big.bin")
    received_at_reload = uploads.bytes_received - before
    assert received_at_reload < SIZE
    await page.screenshot(path=str(artifacts / "03-interrupted.png"), full_page=True)

    # Pick the same file again: it resumes from the proxy's offset instead of starting over.
    await page.get_by_test_id("upload-files").set_input_files(str(big))
    state = page.locator("li[data-upload='big.bin'] [data-testid=upload-state]")
    await expect(state).to_contain_text("resumed at", timeout=30_000)
    await expect(state).to_contain_text("done", timeout=60_000)
    total = uploads.bytes_received - before
    assert SIZE - CHUNK <= total <= SIZE + CHUNK, f"the proxy received {total} bytes for a {SIZE}-byte file"
    entry = page.locator("tr[data-entry='big.bin']")
    await expect(entry).to_contain_text("48 MiB")  # 50 MB
    await expect(interrupted).to_have_count(0)
    await page.screenshot(path=str(artifacts / "04-uploaded.png"), full_page=True)

    # A folder, then share read-only with bob.
    await page.get_by_label("New folder name").fill("results")
    await page.get_by_role("button", name="New folder").click()
    await expect(page.locator("tr[data-entry='results']")).to_be_visible()
    await page.get_by_label("Share with user").fill("bob")
    await page.get_by_role("button", name="Share", exact=True).click()
    await expect(page.get_by_role("list", name="Shared with")).to_contain_text("bob (read-only)")
    await page.screenshot(path=str(artifacts / "05-shared.png"), full_page=True)
    assert not page.corral_errors, page.corral_errors

    # Bob sees it read-only: the files, no upload or change buttons, and the proxy refuses a write.
    bob = await new_page(browser)
    await sign_in(bob, stack, "bob", BOB_PASSWORD)
    await bob.get_by_role("link", name="Vfolders").click()
    bob_row = bob.locator("tr[data-vfolder='webdata']")
    await expect(bob_row).to_contain_text("ro")
    await bob_row.get_by_role("link", name="webdata").click()
    await expect(bob.locator("tr[data-entry='big.bin']")).to_be_visible()
    await expect(bob.get_by_test_id("read-only-note")).to_be_visible()
    await expect(bob.get_by_test_id("upload-files")).to_have_count(0)
    await expect(bob.get_by_role("button", name="Delete")).to_have_count(0)
    refused = await bob.evaluate("""async () => {
        const csrf = (await (await fetch('/api/v1/auth/session')).json()).csrf_token;
        const vf = (await (await fetch('/api/v1/vfolders')).json()).items.find((v) => v.name === 'webdata');
        const rw = await fetch(`/api/v1/vfolders/${vf.id}/token`, {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}, body: '{"permission": "rw"}'});
        const ro = await (await fetch(`/api/v1/vfolders/${vf.id}/token`, {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}, body: '{"permission": "ro"}'})).json();
        const proxy = vf.host.split(':')[0];
        const mkdir = await fetch(`/api/v1/storage-proxies/${proxy}/client/v1/vfolders/${vf.vfid}/mkdir`, {
            method: 'POST', body: '{"path": "nope"}', headers: {'Content-Type': 'application/json',
            'X-CSRF-Token': csrf, Authorization: `Bearer ${ro.token}`}});
        return [rw.status, mkdir.status];
    }""")
    assert refused == [403, 403], refused
    await bob.screenshot(path=str(artifacts / "06-bob-read-only.png"), full_page=True)
    assert not bob.corral_errors, bob.corral_errors
