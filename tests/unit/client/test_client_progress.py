"""Start-up progress (e.g. an image pull) in the SSE stream: SDK parsing and CLI display."""
from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any, AsyncIterator

import pytest
from click.testing import CliRunner

from corral.client.api import AsyncCorralClient
from corral.client.cli.main import main
from corral.client.cli.start_progress import StartProgress
from corral.client.models import StatusChange
from fake_corral_manager import BAD_IMAGE, FakeManager

PULL_LINES = [
    "pulling registry.example/team/cuda:12 — 0/3 layers, 1.0/40 MB",
    "pulling registry.example/team/cuda:12 — 2/3 layers, 40/40 MB, extracting",
    "pulled registry.example/team/cuda:12 — 3 layers, 40 MB",
]


@pytest.fixture(autouse=True)
def pulling(fake_manager: FakeManager) -> None:
    fake_manager.progress_lines = list(PULL_LINES)
    fake_manager.step_delay = 0.05


async def _until_running(changes: AsyncIterator[StatusChange]) -> list[StatusChange]:
    seen = []
    async with aclosing(changes):
        async for change in changes:
            seen.append(change)
            if change.status == "RUNNING" and not change.is_progress:
                break
    return seen


async def test_watch_session_yields_progress_only_when_asked(client: AsyncCorralClient) -> None:
    session = await client.create_session(name="p1")
    changes = await _until_running(client.watch_session(session.id, progress=True))
    assert [(c.kind, c.status) for c in changes] == [
        ("status", "PENDING"), ("status", "SCHEDULED"), ("status", "PREPARING"),
        ("progress", "PREPARING"), ("progress", "PREPARING"), ("progress", "PREPARING"),
        ("status", "RUNNING"),
    ]
    progress = [c for c in changes if c.is_progress]
    assert [c.reason for c in progress] == PULL_LINES
    assert all(c.session_id == session.id and c.at is not None and not c.is_terminal for c in progress)

    session = await client.create_session(name="p2")
    plain = await _until_running(client.watch_session(session.id))
    assert [c.status for c in plain] == ["PENDING", "SCHEDULED", "PREPARING", "RUNNING"]
    assert all(c.kind == "status" for c in plain)


async def test_wait_for_status_passes_progress_to_the_callback(client: AsyncCorralClient) -> None:
    session = await client.create_session(name="p3")
    seen: list[StatusChange] = []
    running = await client.wait_for_status(session.id, {"RUNNING"}, timeout=10, on_progress=seen.append)
    assert running.status == "RUNNING"
    assert [c.reason for c in seen if c.is_progress] == PULL_LINES
    assert running.status_history[-1].status == "RUNNING" and len(running.status_history) == 4


async def test_polling_fallback_reports_a_reason_newer_than_the_history(
    client: AsyncCorralClient, fake_manager: FakeManager
) -> None:
    fake_manager.events_enabled = False
    fake_manager.step_delay = 0.3
    session = await client.create_session(name="p4")
    seen: list[StatusChange] = []
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=10, poll_interval=0.05, on_progress=seen.append)
    reasons = [c.reason for c in seen]
    assert reasons and set(reasons) <= set(PULL_LINES) and all(c.is_progress for c in seen)


def _corral(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(main, list(args), catch_exceptions=False)


def test_cli_run_shows_progress_on_stderr_only(runner: CliRunner, cli_env: str) -> None:
    result = _corral(runner, "run", "print('hi')")
    assert result.exit_code == 0
    assert result.stdout == "hi\n"
    # Not a terminal: plain lines, the first at once; stdout untouched.
    assert result.stderr.startswith("session run-")
    assert PULL_LINES[0] in result.stderr


def test_cli_create_json_keeps_stdout_clean(runner: CliRunner, cli_env: str) -> None:
    result = _corral(runner, "session", "create", "--json", "--name", "pj")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["status"] == "RUNNING"
    assert f"session pj: {PULL_LINES[0]}\n" in result.stderr


def test_cli_session_events_prints_progress(runner: CliRunner, cli_env: str, fake_manager: FakeManager) -> None:
    fake_manager.step_delay = 0.3  # progress is live only: be listening before it comes
    created = _corral(runner, "session", "create", "--no-wait", "--json", "--name", "pe", "--image", BAD_IMAGE)
    assert created.exit_code == 0
    docs = [json.loads(line) for line in _corral(runner, "session", "events", "pe", "--json").stdout.splitlines()]
    assert [d["event"] for d in docs] == ["status"] * 3 + ["progress"] * 3 + ["status"]
    assert [d["reason"] for d in docs if d["event"] == "progress"] == PULL_LINES
    assert docs[-1]["status"] == "ERROR"
    assert _corral(runner, "session", "create", "--no-wait", "--name", "pf", "--image", BAD_IMAGE).exit_code == 0
    human = _corral(runner, "session", "events", "pf").stdout.splitlines()
    assert [line.split("  ", 1)[1] for line in human if "…" in line] == [f"PREPARING …  {r}" for r in PULL_LINES]
    assert "ERROR" in human[-1]


def test_plain_progress_lines_are_spaced_out_but_follow_status_moves(capsys: pytest.CaptureFixture[str]) -> None:
    now = [0.0]
    display = StartProgress("session s", interactive=False, clock=lambda: now[0])

    def progress(status: str, reason: str) -> StatusChange:
        return StatusChange(status, reason, None, "sid", kind="progress")

    with display:
        display.on_change(StatusChange("SCHEDULED", "placed", None, "sid"))  # status notes are not repeated here
        display.on_change(progress("SCHEDULED", "pulling a — resolving"))
        now[0] += 1
        display.on_change(progress("SCHEDULED", "pulling a — 0/2 layers"))  # too soon
        display.on_change(progress("PREPARING", "pulling a — 1/2 layers"))  # the status moved on
        now[0] += 6
        display.on_change(progress("PREPARING", "pulling a — 1/2 layers"))  # unchanged
        display.on_change(progress("PREPARING", "pulled a — 2 layers"))
    assert capsys.readouterr().err.splitlines() == [
        "session s: pulling a — resolving", "session s: pulling a — 1/2 layers", "session s: pulled a — 2 layers",
    ]
