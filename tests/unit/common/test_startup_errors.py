"""Start-up failures: the real cause is what gets reported, and stop() after a partial start is safe."""
from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import sqlite3
import sys
import types
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from corral.client.cli.main import main
from corral.client.cli.startup_errors import explain, run_with_readable_errors
from corral.common.errors import ConfigError, ServiceUnavailable
from corral.common.process import serve_until_signalled

from tests.fixtures import free_port


@pytest.fixture
def bad_mock_gpus(tmp_path: Path) -> Path:
    path = tmp_path / "x.toml"
    path.write_text("nonsense = 1\n")
    return path


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    for name in list(os.environ):
        if name.startswith(("CORRAL_AGENT_", "CORRAL_MANAGER_", "CORRAL_STORAGE_")) or name == "CORRAL_CONFIG":
            monkeypatch.delenv(name)
    yield tmp_path


def corral(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --- AgentServer and StorageProxyServer: stop() after a failed start --------


def agent(tmp_path: Path, **config: Any) -> Any:
    from corral.agent.config import AgentConfig
    from corral.agent.server import AgentServer

    defaults: dict[str, Any] = {
        "id": "a1", "data_dir": tmp_path / "agent", "backend": "dummy", "rpc": {"port": 0},
        "manager": {"url": f"http://127.0.0.1:{free_port()}", "heartbeat_interval_s": 60},
    }
    return AgentServer(AgentConfig.model_validate({**defaults, **config}))


async def test_agent_with_a_bad_mock_gpu_file_reports_the_file_and_stops_cleanly(
    tmp_path: Path, bad_mock_gpus: Path
) -> None:
    server = agent(tmp_path, gpu={"plugin": "mock", "topology": str(bad_mock_gpus)})
    with pytest.raises(ConfigError, match=rf"GPU topology file {bad_mock_gpus}: unknown keys"):
        await server.start()
    await server.stop()  # nothing was started: nothing to do, nothing raised
    await server.stop()


async def test_agent_failing_late_in_start_undoes_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from corral.agent.backend.dummy import DummyBackend
    from corral.agent.manager_link import ManagerLink

    undone: list[str] = []

    async def backend_close(self: DummyBackend) -> None:
        undone.append("backend")

    async def link_stop(self: ManagerLink) -> None:
        undone.append("link")

    monkeypatch.setattr(DummyBackend, "close", backend_close)
    monkeypatch.setattr(ManagerLink, "stop", link_stop)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = agent(tmp_path, rpc={"port": taken.getsockname()[1]})
        with pytest.raises(OSError) as err:
            await server.start()
    assert err.value.errno == errno.EADDRINUSE
    assert undone == ["link", "backend"]  # newest first
    await server.stop()
    assert undone == ["link", "backend"]  # not undone twice


async def test_a_failing_cleanup_does_not_hide_the_start_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from corral.agent.backend.dummy import DummyBackend

    async def broken_close(self: DummyBackend) -> None:
        raise RuntimeError("close failed too")

    monkeypatch.setattr(DummyBackend, "close", broken_close)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = agent(tmp_path, rpc={"port": taken.getsockname()[1]})
        with pytest.raises(OSError) as err:
            await server.start()
    assert err.value.errno == errno.EADDRINUSE
    assert any("close failed too" in note for note in err.value.__notes__)
    await server.stop()


async def test_storage_proxy_failing_on_its_second_listener_stops_the_first(tmp_path: Path) -> None:
    from corral.storage_proxy.config import load_storage_config
    from corral.storage_proxy.server import StorageProxyServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = load_storage_config(None, environ={}, overrides={
            "manager_secret": "m" * 16, "jwt_secret": "j" * 16,
            "manager_api": {"port": 0}, "client_api": {"host": "127.0.0.1", "port": taken.getsockname()[1]},
            "volumes": [{"name": "v", "path": str(tmp_path / "v")}],
        })
        server = StorageProxyServer(config)
        with pytest.raises(OSError) as err:
            await server.start()
    assert err.value.errno == errno.EADDRINUSE
    manager_port = int(server.manager_url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", manager_port)) != 0  # the first listener is closed again
    await server.stop()
    await server.stop()


# --- the embedded stack ------------------------------------------------------


async def test_embedded_stack_stops_what_started_and_reports_the_start_error(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from corral.client.embedded_stack import EmbeddedStack

    class HalfStartedManager:
        url = "http://127.0.0.1:1"

        def __init__(self, config: Any) -> None:
            pass

        async def start(self) -> None:
            raise ConnectionRefusedError(111, "the real problem")

        async def stop(self) -> None:
            raise AttributeError("'ManagerServer' object has no attribute 'ctx'")

    monkeypatch.setattr("corral.manager.server.ManagerServer", HalfStartedManager)
    stack = EmbeddedStack(isolated / "data", "127.0.0.1", 0, write_client_config=False)
    with pytest.raises(ConnectionRefusedError, match="the real problem") as err:
        await stack.start()
    assert any("no attribute 'ctx'" in note for note in err.value.__notes__)
    with socket.socket() as probe:  # the storage proxy, started first, was stopped
        assert probe.connect_ex(("127.0.0.1", int(stack.storage.manager_url.rsplit(":", 1)[1]))) != 0
    await stack.stop()  # nothing left to stop


def test_corrupt_embedded_toml_is_named(isolated: Path) -> None:
    from corral.client.embedded_stack import STATE_FILE, load_or_create_secrets

    data = isolated / "data"
    load_or_create_secrets(data)  # creates it
    assert load_or_create_secrets(data) == load_or_create_secrets(data)
    state = data / STATE_FILE
    for text, detail in (("x = \n", "Invalid value"), ('cluster_secret = "a"\n', "storage_secret"),
                         (state.read_text().replace('"', "", 2).replace("cluster_secret = ", "cluster_secret = 5 #"),
                          "must be non-empty strings")):
        state.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_or_create_secrets(data)
        assert str(err.value).startswith(f"{state} is corrupt: ")
        assert detail in str(err.value) and str(err.value).endswith("; fix or delete it")


def test_up_with_a_corrupt_embedded_toml_is_one_line_exit_3(isolated: Path) -> None:
    data = isolated / "data"
    data.mkdir()
    (data / "embedded.toml").write_text("[[[")
    result = corral("up", "--data-dir", str(data), "--port", "0")
    assert result.exit_code == 3
    assert result.stderr.startswith(f"error: {data / 'embedded.toml'} is corrupt: ")
    assert result.stderr.count("\n") == 1


def test_up_with_a_bad_mock_gpu_file_says_what_is_wrong(isolated: Path, bad_mock_gpus: Path) -> None:
    result = corral("up", "--data-dir", str(isolated / "data"), "--port", "0", "--mock-gpus", str(bad_mock_gpus))
    assert result.exit_code == 3, result.output
    assert result.stderr.splitlines()[-1] == f"error: GPU topology file {bad_mock_gpus}: unknown keys ['nonsense']"
    assert "AttributeError" not in result.stderr


# --- the CLI's start commands: the real error, readably ---------------------


def test_a_stop_error_after_a_failed_start_does_not_hide_it() -> None:
    async def start() -> None:
        raise ConfigError("the real problem")

    async def stop() -> None:
        raise AttributeError("'ManagerServer' object has no attribute 'ctx'")

    with pytest.raises(ConfigError, match="the real problem") as err:
        run_with_readable_errors(lambda: asyncio.run(serve_until_signalled(start, stop)))
    assert any("no attribute 'ctx'" in note for note in err.value.__notes__)


def test_a_stop_error_after_a_clean_run_is_reported_as_itself() -> None:
    async def start() -> None:
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGINT)  # Ctrl-C once started

    async def stop() -> None:
        try:
            {}["x"]
        except KeyError:
            raise RuntimeError("stop failed")  # its context is its own, not a start error

    with pytest.raises(RuntimeError, match="stop failed"):
        run_with_readable_errors(lambda: asyncio.run(serve_until_signalled(start, stop)))


def test_manager_start_with_unreachable_postgresql(isolated: Path) -> None:
    port = free_port()
    config = isolated / "m.toml"
    config.write_text(f'[db]\nurl = "postgresql://corral:pw@127.0.0.1:{port}/corral"\n')
    result = corral("manager", "start", "--config", str(config))
    assert result.exit_code == 5
    assert result.stderr.splitlines()[-1] == f"error: cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused"


def test_verbose_shows_the_traceback_of_the_real_cause(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = types.ModuleType("corral.manager.launcher")

    def run_manager(path: Path) -> None:
        async def start() -> None:
            raise ValueError("the real problem")

        async def stop() -> None:
            raise AttributeError("'ManagerServer' object has no attribute 'ctx'")

        asyncio.run(serve_until_signalled(start, stop))

    launcher.run_manager = run_manager  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "corral.manager.launcher", launcher)
    config = isolated / "m.toml"
    config.write_text("")
    quiet = corral("manager", "start", "--config", str(config))
    assert (quiet.exit_code, quiet.stderr) == (1, "error: ValueError: the real problem\n")
    verbose = corral("-v", "manager", "start", "--config", str(config))
    assert "Traceback" in verbose.stderr and "in start" in verbose.stderr
    assert "stopping after this failed also failed: AttributeError" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == "error: ValueError: the real problem"


def _dbapi_error(orig: Exception) -> Exception:
    from sqlalchemy.exc import DBAPIError

    return DBAPIError.instance("connect", {}, orig, Exception)


@pytest.mark.parametrize(
    ("error", "url", "expected"),
    [
        (OSError(errno.EADDRINUSE, "error while attempting to bind on address ('127.0.0.1', 8080): "
                 "address already in use"), None, "cannot listen on 127.0.0.1:8080: address already in use"),
        (socket.gaierror(-2, "Name or service not known"), "postgresql://u@db.invalid/x",
         "cannot reach PostgreSQL at db.invalid:5432: unknown host (name or service not known)"),
        (OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432, 0, 0), "
                 "[Errno 111] Connect call failed ('127.0.0.1', 5432)"), "postgresql://localhost/x",
         "cannot reach PostgreSQL at localhost:5432: connection refused"),
        (TimeoutError(), "postgresql://h:6000/x", "cannot reach PostgreSQL at h:6000: timed out"),
        (_dbapi_error(sqlite3.OperationalError("unable to open database file")), "sqlite:////no/dir/corral.db",
         "SQLite database /no/dir/corral.db: unable to open database file"),
        (_dbapi_error(RuntimeError('role "nobody" does not exist')), "postgresql://nobody@db:5433/x",
         'PostgreSQL at db:5433: role "nobody" does not exist'),
    ],
)
def test_explained_errors(error: Exception, url: str | None, expected: str) -> None:
    if url is not None and isinstance(error, OSError):  # as if raised inside the database driver
        error = _raised_in_driver(error)
    explained = explain(error, lambda: url)
    assert isinstance(explained, (ConfigError, ServiceUnavailable))
    assert str(explained) == expected


def _raised_in_driver(error: OSError) -> OSError:
    driver = types.ModuleType("asyncpg.connect_utils")
    exec("def connect(error):\n    raise error\n", driver.__dict__)
    try:
        driver.connect(error)
    except OSError as exc:
        return exc
    raise AssertionError("not raised")


def test_a_port_held_by_a_corral_manager_is_named() -> None:
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status": "ok", "version": "9.9"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        error = OSError(errno.EADDRINUSE, f"error while attempting to bind on address ('127.0.0.1', {port}): "
                        "address already in use")
        message = str(explain(error))
        assert f"cannot listen on 127.0.0.1:{port}: a Corral manager (version 9.9) already runs there" in message
        assert "kill $(cat .corral/up.pid)" in message
    finally:
        server.shutdown()
