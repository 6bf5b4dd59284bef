"""Ctrl-C on `corral exec`/`corral run` interrupts the remote code; `corral interrupt`; `session logs --follow`."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from corral.client.api import AsyncCorralClient
from corral.client.cli.main import main
from fake_corral_manager import ACCESS_KEY, SECRET_KEY, FakeManager

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
CATCHES = (
    "import time\ntry:\n    print('started', flush=True)\n    time.sleep(30)\n"
    "except KeyboardInterrupt:\n    print('cleaning up', flush=True)\n    raise\n"
)
IGNORES = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('started', flush=True)\ntime.sleep(30)\n"


@pytest.fixture(autouse=True)
def _sigint_delivered() -> object:
    """Children inherit an ignored SIGINT (a suite started in the background by a non-interactive shell
    has it ignored): give these tests, and the processes they start, the default handler."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _session(runner: CliRunner, name: str) -> dict:
    result = runner.invoke(main, ["session", "create", "--json", "--name", name], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _cli(manager_url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CORRAL_ENDPOINT": manager_url, "CORRAL_ACCESS_KEY": ACCESS_KEY,
           "CORRAL_SECRET_KEY": SECRET_KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "corral.client.cli.main", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_started(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"


@posix_only
def test_first_ctrl_c_interrupts_the_remote_code_and_shows_its_output_to_the_end(
    runner: CliRunner, cli_env: str, fake_manager: FakeManager
) -> None:
    _session(runner, "busy")
    proc = _cli(cli_env, "exec", "busy", CATCHES)
    try:
        _wait_started(proc)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - started < 10, "the remote code was not interrupted"
    assert proc.returncode == 130, stderr
    assert stdout == "cleaning up\n"  # the code's own reaction to the interrupt still shows
    lines = stderr.strip().splitlines()
    assert lines[0].startswith("interrupting the code") and lines[-1] == "error: interrupted"
    assert not fake_manager.running, "the code must have stopped"
    (session,) = fake_manager.sessions.values()
    assert session["status"] == "RUNNING"  # exec never ends the session


@posix_only
def test_second_ctrl_c_stops_waiting_at_once_and_leaves_the_session(
    runner: CliRunner, cli_env: str, fake_manager: FakeManager
) -> None:
    _session(runner, "stubborn")
    proc = _cli(cli_env, "exec", "stubborn", IGNORES)
    try:
        _wait_started(proc)
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith("interrupting the code")
        time.sleep(0.3)  # the interrupt is sent and ignored
        assert proc.poll() is None, "one Ctrl-C keeps waiting for the result"
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - started < 5
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: interrupted (stopped waiting; the code may still be running in stubborn")
    assert "corral interrupt stubborn" in last
    (session,) = fake_manager.sessions.values()
    assert session["status"] == "RUNNING"


@posix_only
def test_ctrl_c_on_run_interrupts_then_destroys_the_session(manager_url: str, fake_manager: FakeManager) -> None:
    proc = _cli(manager_url, "run", CATCHES)
    try:
        _wait_started(proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stdout == "cleaning up\n"
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
    (session,) = fake_manager.sessions.values()
    assert session["status"] == "TERMINATED"


def test_interrupt_command_when_nothing_runs(runner: CliRunner, cli_env: str) -> None:
    _session(runner, "idle")
    result = runner.invoke(main, ["interrupt", "idle"], catch_exceptions=False)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "nothing was running in idle\n")


def test_interrupt_command_on_a_missing_session(runner: CliRunner, cli_env: str) -> None:
    result = runner.invoke(main, ["interrupt", "nope"], catch_exceptions=False)
    assert result.exit_code == 4
    assert result.stderr == "error: no session 'nope'\n"


async def test_sdk_interrupt_ends_the_execute_as_interrupted(client: AsyncCorralClient) -> None:
    session = await client.create_session(name="sdk")
    await client.wait_for_status(session.id, {"RUNNING"}, 10)
    assert await client.interrupt("sdk") is False
    events: list[dict] = []

    async def run() -> None:
        async for event in client.execute("sdk", CATCHES):
            events.append(event)

    task = asyncio.create_task(run())
    while not events:
        await asyncio.sleep(0.02)
    assert await client.interrupt("sdk") is True
    await asyncio.wait_for(task, 10)
    assert events[-1] == {"op": "result", "status": "interrupted", "exit_code": 1, "error": "KeyboardInterrupt"}
    assert "cleaning up\n" in [e.get("data") for e in events]


def test_logs_follow_streams_until_the_session_ends(runner: CliRunner, cli_env: str) -> None:
    _session(runner, "chatty")
    result = runner.invoke(main, ["session", "logs", "--follow", "chatty"], catch_exceptions=False)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "live line 1\nlive line 2\n", "")


def test_logs_follow_says_when_nothing_came(runner: CliRunner, cli_env: str, fake_manager: FakeManager) -> None:
    _session(runner, "quiet")
    fake_manager.follow_chunks = []
    result = runner.invoke(main, ["session", "logs", "-f", "quiet"], catch_exceptions=False)
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "quiet wrote no output before it ended\n"


def test_logs_follow_says_it_is_waiting(runner: CliRunner, cli_env: str, fake_manager: FakeManager) -> None:
    _session(runner, "slow")
    fake_manager.step_delay = 1.3
    result = runner.invoke(main, ["session", "logs", "-f", "slow"], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout == "live line 1\nlive line 2\n"
    assert result.stderr == "no output from slow yet; waiting for some (Ctrl-C to stop)\n"
