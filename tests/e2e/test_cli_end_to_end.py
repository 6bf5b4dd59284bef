"""The `corral` CLI as a user runs it: `corral up` as a process, commands as subprocesses."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.fixtures import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CORRAL = str(Path(sys.executable).with_name("corral"))


class CorralUp:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.env = {
            **os.environ,
            "HOME": str(root / "home"),
            "XDG_CONFIG_HOME": str(root / "home" / ".config"),
            "CORRAL_LOG_LEVEL": "INFO",
        }
        for name in ("CORRAL_CONFIG", "CORRAL_ENDPOINT", "CORRAL_ACCESS_KEY", "CORRAL_SECRET_KEY"):
            self.env.pop(name, None)
        self.log = root / "up.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        seen = self.log.read_text().count("corral: ready at") if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [CORRAL, "up", "--data-dir", str(self.root / "data"), "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while self.log.read_text().count("corral: ready at") <= seen:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)

    def corral(self, *args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CORRAL, *args], env=self.env, input=input, capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture
def up(base_image: str) -> Iterator[CorralUp]:
    root = Path(tempfile.mkdtemp(prefix="ce-", dir="/tmp"))
    stack = CorralUp(root)
    stack.start()
    try:
        yield stack
    finally:
        if stack.proc and stack.proc.poll() is None:
            stack.stop()


@pytest.fixture(scope="module")
def base_image(docker_engine: str) -> str:
    import asyncio

    from corral.kernels.builder import build_image

    asyncio.run(build_image("python"))
    return "corral/python:latest"


def test_run_streams_output_and_exits_with_the_codes_status(up: CorralUp) -> None:
    done = up.corral("run", "--cpu", "1", "--mem", "256m", "print(1+1)")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2\n"
    failed = up.corral("run", "import sys; print('partial'); sys.exit(3)")
    assert failed.returncode == 3 and "partial" in failed.stdout
    from_stdin = up.corral("run", "-", input="import os\nprint(os.environ['CORRAL_MEM'])\n")
    assert from_stdin.returncode == 0 and from_stdin.stdout.strip().isdigit()
    # Sessions are destroyed after `run` unless --keep.
    listing = json.loads(up.corral("session", "ls", "--json").stdout)
    assert listing == []


def test_bad_input_is_one_line_and_non_zero(up: CorralUp) -> None:
    unknown = up.corral("run", "--image", "corral/nope:0", "print(1)")
    assert unknown.returncode == 1
    assert unknown.stderr.count("\n") == 1 and "corral/nope:0" in unknown.stderr
    too_big = up.corral("run", "--mem", "100t", "print(1)")
    assert too_big.returncode != 0 and "mem" in too_big.stderr and too_big.stderr.count("\n") == 1
    missing = up.corral("session", "info", "no-such-session")
    assert missing.returncode == 4 and missing.stderr.startswith("error:")
    wrong_key = subprocess.run([CORRAL, "session", "ls"], env={**up.env, "CORRAL_SECRET_KEY": "forged"},
                               capture_output=True, text=True, timeout=60)
    assert wrong_key.returncode == 3


def test_session_commands_and_json(up: CorralUp) -> None:
    created = up.corral("session", "create", "--name", "nb", "--cpu", "1", "--mem", "256m", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["status"] == "RUNNING"
    assert up.corral("exec", "nb", "x = 41").returncode == 0
    shown = up.corral("exec", "nb", "print(x + 1)")
    assert shown.stdout == "42\n"
    info = json.loads(up.corral("session", "info", "nb", "--json").stdout)
    assert info["status"] == "RUNNING" and info["kernels"][0]["container_id"]
    assert [h["status"] for h in info["status_history"]][:4] == ["PENDING", "SCHEDULED", "PREPARING", "RUNNING"]
    assert info["requested_slots"]["cpu"] == "1"
    table = up.corral("session", "ls")
    assert "nb" in table.stdout
    agents = json.loads(up.corral("admin", "agents", "--json").stdout)
    assert agents[0]["id"].startswith("local-") and agents[0]["status"] == "ALIVE"
    images = json.loads(up.corral("image", "ls", "--json").stdout)
    assert any(i["name"] == "corral/python:latest" for i in images)
    assert up.corral("session", "rm", "nb").returncode == 0


def test_sessions_survive_an_up_restart(up: CorralUp) -> None:
    assert up.corral("session", "create", "--name", "keep", "--mem", "128m").returncode == 0
    assert up.corral("exec", "keep", "state = 'kept'").returncode == 0
    assert up.stop() == 0
    assert "left running" in up.log.read_text() or "keep running" in up.log.read_text()
    up.start()
    shown = up.corral("exec", "keep", "print(state)")
    assert shown.returncode == 0 and shown.stdout == "kept\n", shown.stderr
    assert up.corral("session", "rm", "keep").returncode == 0


def test_image_build_reuses_and_lists(up: CorralUp) -> None:
    built = up.corral("image", "build", "python")
    assert built.returncode == 0, built.stderr
    assert "already exists" in built.stdout + built.stderr
    unknown = up.corral("image", "build", "no-such-recipe")
    assert unknown.returncode == 4 and unknown.stderr.startswith("error:")


def test_session_wait_exits_with_the_batch_exit_code(up: CorralUp) -> None:
    created = up.corral("session", "create", "--name", "job", "--type", "batch", "--no-wait", "--json",
                        "--", "sh", "-c", "sleep 1; exit 3")
    assert created.returncode == 0, created.stderr
    waited = up.corral("session", "wait", "job")
    assert waited.returncode == 3, waited.stderr
    assert "TERMINATED" in waited.stdout and "exit code 3" in waited.stdout
    broken = up.corral("session", "create", "--name", "bad", "--image", "corral/nope:1", "--no-wait")
    assert broken.returncode == 0
    assert up.corral("session", "wait", "bad").returncode == 1
