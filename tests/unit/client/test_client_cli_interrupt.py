"""Ctrl-C during `corral run`: the session is destroyed and the exit status is 130."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from fake_corral_manager import ACCESS_KEY, SECRET_KEY, FakeManager


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_destroys_the_session(manager_url: str, fake_manager: FakeManager) -> None:
    env = {**os.environ, "CORRAL_ENDPOINT": manager_url, "CORRAL_ACCESS_KEY": ACCESS_KEY,
           "CORRAL_SECRET_KEY": SECRET_KEY}
    code = "print('started', flush=True); import time; time.sleep(3)"
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral.client.cli.main", "run", code],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "started\n"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
    deadline = time.monotonic() + 5
    (session,) = fake_manager.sessions.values()
    while session["status"] != "TERMINATED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert session["status"] == "TERMINATED"
