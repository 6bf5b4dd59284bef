"""benchmarks/interactive.py: its in-session server and its load generator agree on the protocol
(upload, download, echo), here on loopback without Docker; and the target arithmetic."""
from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "interactive.py"


@pytest.fixture(scope="module")
def bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("benchmark_interactive", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sink_and_load_generator_speak_the_same_protocol(bench) -> None:  # type: ignore[no-untyped-def]
    port = _free_port()
    sink = subprocess.Popen([sys.executable, "-c", bench.SINK, str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        for op, size in (("U", 3 * bench.MB + 17), ("D", 2 * bench.MB + 5), ("E", 7)):
            done = subprocess.run([sys.executable, "-c", bench.LOADGEN, "127.0.0.1", str(port), op, str(size)],
                                  capture_output=True, timeout=60)
            assert done.returncode == 0, done.stderr.decode()
            result = json.loads(done.stdout)
            assert result["seconds"] > 0 and result["connect_s"] >= 0
            if op == "E":
                assert len(result["rtts"]) == size
    finally:
        sink.kill()
        sink.wait(10)


def test_targets_say_by_how_much(bench) -> None:  # type: ignore[no-untyped-def]
    assert bench.target(0.5, 1.0) == {"target": 1.0, "value": 0.5, "met": True, "margin": 2.0}
    assert bench.target(0.25, 0.5, higher_is_better=True)["met"] is False
    assert bench.target(None, 4.0)["met"] is None
    assert bench.percentile([3.0, 1.0, 2.0], 50) == 2.0
