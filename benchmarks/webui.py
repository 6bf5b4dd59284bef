"""The web UI's session list in a real browser (Debian's chromium via Playwright) against a live manager.

No Docker: a manager on SQLite serving the built UI (manager/webui/dist, `make webui`); the sessions are
placed in a resource group without agents, so they stay PENDING (cheap, 1,000 of them) until destroyed,
which cancels them at once. Four figures, each with a same-run baseline:

(a) first load of the session list (20 sessions), cold cache: a fresh browser context (cookie only) per
    run, from navigation to the table's rows rendered; baseline: an empty static HTML page from the same
    server, also in a fresh context. Target (issue 11): <= 1 s.
(b) JS shipped for the first page: the gzip'd size of the scripts index.html references (its entry and
    modulepreloads; lazily loaded chunks such as the terminal are left out). Target: <= 400 kB.
(c) 1,000 sessions: time to render the list, rows in the DOM (the table is windowed), and frame intervals
    (requestAnimationFrame) while scrolling the table from top to bottom; baseline: frame intervals of
    the same page left idle.
(d) status change -> page: a session is destroyed through the API and a MutationObserver in the page
    stamps when its row's status changes; latency = stamp - the time the request was sent (same clock).
    Baseline: the DELETE round trip itself. Target: <= 500 ms.

The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.integration.spine.cluster: the in-process cluster of the tests

from tests.integration.spine.cluster import LiveCluster  # noqa: E402

DIST = REPO / "manager" / "webui" / "dist"
CHROMIUM = os.environ.get("CORRAL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSWORD = "webui-benchmark-password"
NOWHERE = {"resource_group": "nowhere", "resources": {"mem": "64m"}}
ROW = "table[aria-label='Sessions'] tbody tr[data-session]"
BLANK = "<!doctype html><html lang=en><head><meta charset=utf-8><title>blank</title></head><body></body></html>"

# Records, per session name, when its row's status text first differs from what it was (epoch ms).
WATCH_JS = """() => {
  window.__statusAt = {};
  const seen = new Map();
  const statusOf = (tr) => tr.querySelector("td[data-label='Status']")?.textContent ?? "";
  const scan = () => {
    const stamp = performance.timeOrigin + performance.now();
    for (const tr of document.querySelectorAll("tr[data-session]")) {
      const name = tr.dataset.session, status = statusOf(tr);
      if (!seen.has(name)) seen.set(name, status);
      else if (seen.get(name) !== status && !(name in window.__statusAt)) window.__statusAt[name] = [stamp, status];
    }
  };
  scan();
  new MutationObserver(scan).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""

SCROLL_JS = """async ({frames, idle}) => {
  const box = document.querySelector('.table-scroll');
  const step = idle ? 0 : Math.ceil((box.scrollHeight - box.clientHeight) / frames);
  const intervals = [];
  let maxRows = 0;
  let last = await new Promise(requestAnimationFrame);
  for (let i = 0; i < frames; i++) {
    if (!idle) box.scrollTop += step;
    const now = await new Promise(requestAnimationFrame);
    intervals.push(now - last);
    last = now;
    maxRows = Math.max(maxRows, box.querySelectorAll('tr[data-session]').length);
  }
  const bottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 2;
  return {intervals, maxRows, bottom};
}"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def first_page_js(dist: Path) -> tuple[int, int, list[str]]:
    """(raw bytes, gzip bytes, files) of the scripts index.html loads up front."""
    html = (dist / "index.html").read_text()
    refs = re.findall(r'<script[^>]+src="([^"]+\.js)"', html) + re.findall(
        r'<link[^>]+rel="modulepreload"[^>]+href="([^"]+\.js)"', html)
    raw = packed = 0
    for ref in dict.fromkeys(refs):
        data = (dist / ref.lstrip("/")).read_bytes()
        raw += len(data)
        packed += len(gzip.compress(data, 9))
    return raw, packed, list(dict.fromkeys(refs))


async def sign_in_cookie(http: aiohttp.ClientSession, base: str) -> str:
    async with http.post(f"{base}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}) as r:
        assert r.status == 200, await r.text()
        return r.cookies["corral_session"].value


async def fresh_page(browser: Any, base: str, cookie: str | None) -> tuple[Any, Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    if cookie:
        await context.add_cookies([{"name": "corral_session", "value": cookie, "url": base}])
    page = await context.new_page()
    page.set_default_timeout(30_000)
    return context, page


async def time_list_load(browser: Any, base: str, cookie: str) -> tuple[float, float, int, float]:
    """(wall s from goto to rows rendered, in-page ms since navigation start, rows in the DOM, ms spent
    in the list API requests)."""
    context, page = await fresh_page(browser, base, cookie)
    try:
        started = time.perf_counter()
        await page.goto(base + "/", wait_until="commit")
        await page.wait_for_selector(ROW)
        wall = time.perf_counter() - started
        in_page = await page.evaluate("performance.now()")
        rows = await page.locator(ROW).count()
        api_ms = await page.evaluate(
            "performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/sessions?'))"
            ".reduce((sum, e) => sum + e.duration, 0)")
        return wall, in_page, rows, api_ms
    finally:
        await context.close()


async def time_blank_load(browser: Any, base: str) -> float:
    context, page = await fresh_page(browser, base, None)
    try:
        started = time.perf_counter()
        await page.goto(base + "/blank.html", wait_until="load")
        return time.perf_counter() - started
    finally:
        await context.close()


async def create_sessions(client: Any, names: list[str]) -> list[Any]:
    made: list[Any] = []
    for i in range(0, len(names), 50):
        made += await asyncio.gather(*(client.create_session(name=n, **NOWHERE) for n in names[i:i + 50]))
    return made


async def run(loads: int, changes: int, total: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from corral.manager.passwords import set_user_password

    root = Path(tempfile.mkdtemp(prefix="corral-webui-bench-"))
    dist = root / "dist"
    shutil.copytree(DIST, dist)
    (dist / "blank.html").write_text(BLANK)
    os.environ["CORRAL_WEBUI_DIST"] = str(dist)
    cluster = LiveCluster(db_url=f"sqlite:///{root / 'corral.db'}")
    figures: dict[str, Any] = {}
    try:
        await cluster.start_manager()
        await set_user_password(cluster.manager.sessionmaker, "admin", PASSWORD)
        base = cluster.manager.url
        client = cluster.client()
        await client.create_resource_group("nowhere")  # no agent there: its sessions stay PENDING
        async with aiohttp.ClientSession() as http, async_playwright() as pw:
            cookie = await sign_in_cookie(http, base)
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)

            # (a) first load, 20 sessions
            await create_sessions(client, [f"s{i:04d}" for i in range(20)])
            await time_list_load(browser, base, cookie)  # warm the server side (imports, DB), not the browser
            ui = [await time_list_load(browser, base, cookie) for _ in range(loads)]
            blank = [await time_blank_load(browser, base) for _ in range(loads)]
            load_p50 = statistics.median(u[0] for u in ui)
            blank_p50 = statistics.median(blank)
            figures.update(first_load_p50_s=load_p50, first_load_max_s=max(u[0] for u in ui),
                           first_load_in_page_p50_ms=statistics.median(u[1] for u in ui),
                           first_load_list_api_p50_ms=statistics.median(u[3] for u in ui),
                           blank_page_p50_s=blank_p50, first_load_ratio=load_p50 / blank_p50)
            print(f"(a) first load (20 sessions, cold cache): p50 {load_p50 * 1000:.0f} ms, max "
                  f"{figures['first_load_max_s'] * 1000:.0f} ms (in page {figures['first_load_in_page_p50_ms']:.0f}"
                  f" ms since navigation, of which the list API {figures['first_load_list_api_p50_ms']:.0f} ms)"
                  f" | blank page p50 {blank_p50 * 1000:.0f} ms | ratio "
                  f"{figures['first_load_ratio']:.1f}x | target <= 1000 ms")

            # (b) JS for the first page
            raw, packed, files = first_page_js(dist)
            figures.update(first_page_js_bytes=raw, first_page_js_gzip_bytes=packed,
                           first_page_js_ratio_to_limit=packed / 400_000)
            print(f"(b) first-page JS: {len(files)} file(s), {raw / 1000:.1f} kB, gzip {packed / 1000:.1f} kB "
                  f"({packed / 400_000:.0%} of the 400 kB budget)")

            # (c) 1,000 sessions
            started = time.perf_counter()
            await create_sessions(client, [f"s{i:04d}" for i in range(20, total)])
            made_s = time.perf_counter() - started
            render = [await time_list_load(browser, base, cookie) for _ in range(max(1, loads // 2))]
            render_p50 = statistics.median(r[0] for r in render)
            context, page = await fresh_page(browser, base, cookie)
            await page.goto(base + "/")
            await page.wait_for_selector(ROW)
            frames = 240
            idle = await page.evaluate(SCROLL_JS, {"frames": frames // 2, "idle": True})
            scrolled = await page.evaluate(SCROLL_JS, {"frames": frames, "idle": False})
            idle_p95 = percentile(idle["intervals"], 95)
            scroll = scrolled["intervals"]
            figures.update(sessions=total, create_s=made_s, render_1000_p50_s=render_p50,
                           render_1000_list_api_p50_ms=statistics.median(r[3] for r in render),
                           rows_in_dom=render[0][2], rows_in_dom_scrolling_max=scrolled["maxRows"],
                           scrolled_to_bottom=scrolled["bottom"],
                           scroll_frame_p50_ms=statistics.median(scroll), scroll_frame_p95_ms=percentile(scroll, 95),
                           scroll_frame_max_ms=max(scroll), scroll_long_frames=sum(1 for f in scroll if f > 50),
                           idle_frame_p95_ms=idle_p95, scroll_frame_ratio=percentile(scroll, 95) / idle_p95)
            print(f"(c) {total} sessions (made in {made_s:.1f} s): rendered in {render_p50 * 1000:.0f} ms p50 (list API "
                  f"{figures['render_1000_list_api_p50_ms']:.0f} ms), "
                  f"{render[0][2]} rows in the DOM (max {scrolled['maxRows']} while scrolling) | scroll "
                  f"{frames} frames to the bottom ({'reached' if scrolled['bottom'] else 'NOT reached'}): frame p50 "
                  f"{figures['scroll_frame_p50_ms']:.1f} ms p95 {figures['scroll_frame_p95_ms']:.1f} ms max "
                  f"{figures['scroll_frame_max_ms']:.1f} ms, {figures['scroll_long_frames']} over 50 ms | idle "
                  f"p95 {idle_p95:.1f} ms | ratio {figures['scroll_frame_ratio']:.2f}x")

            # (d) status change -> page, on the 1,000-session list (newest rows are at the top)
            await page.evaluate("document.querySelector('.table-scroll').scrollTop = 0")
            await page.wait_for_selector(f"tr[data-session='s{total - 1:04d}']")
            await page.wait_for_function("document.querySelector('[data-testid=live-state]')?.textContent === 'live'")
            await page.evaluate(WATCH_JS)
            latencies, round_trips = [], []
            for i in range(changes):
                name = f"s{total - 1 - i:04d}"
                sent = time.time() * 1000
                await client.destroy_session(name)
                round_trips.append(time.time() * 1000 - sent)
                handle = await page.wait_for_function(f"window.__statusAt['{name}']", timeout=10_000)
                stamp, status = await handle.json_value()
                assert status == "CANCELLED", status
                latencies.append(stamp - sent)
                await asyncio.sleep(0.2)
            await context.close()
            figures.update(status_to_page_p50_ms=statistics.median(latencies), status_to_page_max_ms=max(latencies),
                           delete_rtt_p50_ms=statistics.median(round_trips),
                           status_to_page_ratio=statistics.median(latencies) / statistics.median(round_trips))
            print(f"(d) status change -> row ({changes} destroys): p50 {figures['status_to_page_p50_ms']:.0f} ms, "
                  f"max {figures['status_to_page_max_ms']:.0f} ms | DELETE round trip p50 "
                  f"{figures['delete_rtt_p50_ms']:.0f} ms | ratio {figures['status_to_page_ratio']:.1f}x | "
                  f"target <= 500 ms")
            await browser.close()
    finally:
        await cluster.stop()
        os.environ.pop("CORRAL_WEBUI_DIST", None)
        shutil.rmtree(root, ignore_errors=True)
    figures["targets_met"] = bool(
        figures["first_load_max_s"] <= 1.0 and figures["first_page_js_gzip_bytes"] <= 400_000
        and figures["status_to_page_max_ms"] <= 500 and figures["rows_in_dom_scrolling_max"] < 200
        and figures["scrolled_to_bottom"]
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=5, help="fresh-context loads timed for (a)")
    parser.add_argument("--changes", type=int, default=10, help="status changes timed for (d)")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions for (c) and (d)")
    args = parser.parse_args()
    if not (DIST / "index.html").is_file():
        raise SystemExit("the web UI is not built: make webui")
    figures = asyncio.run(run(args.loads, args.changes, args.sessions))
    print(json.dumps({"benchmark": "webui", **{k: round(v, 4) if isinstance(v, float) else v
                                                for k, v in figures.items()}}))


if __name__ == "__main__":
    main()
