"""The `corral` CLI through click's CliRunner, against the fake manager."""
from __future__ import annotations

import json
import socket
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from corral.client.cli.main import main
from corral.client.config import ClientConfig, write_client_config
from fake_corral_manager import ACCESS_KEY, BAD_IMAGE, SECRET_KEY, USER_ACCESS_KEY, USER_SECRET_KEY, FakeManager


def corral(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    return runner.invoke(main, list(args), input=input, catch_exceptions=False)


def new_session(runner: CliRunner, *args: str) -> dict[str, Any]:
    result = corral(runner, "session", "create", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_help_documents_exit_codes(runner: CliRunner) -> None:
    result = corral(runner, "--help")
    assert result.exit_code == 0
    for line in ("3    configuration or authentication problem", "4    not found", "5    manager unreachable"):
        assert line in result.stdout


def test_run_streams_output_and_destroys_session(runner: CliRunner, cli_env: str, fake_manager: FakeManager) -> None:
    code = "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\n"
    result = corral(runner, "run", "--cpu", "1", "--mem", "256m", "-e", "A=b", code)
    assert result.exit_code == 0, result.output
    assert result.stdout == "to out\n"
    assert result.stderr == "to err\n"
    (session,) = fake_manager.sessions.values()
    assert session["status"] == "TERMINATED"
    assert session["requested_slots"] == {"cpu": "1", "mem": str(256 << 20)}
    assert session["env"] == {"A": "b"}


def test_run_exits_with_the_codes_exit_status(runner: CliRunner, cli_env: str) -> None:
    result = corral(runner, "run", "print('partial'); raise SystemExit(3)")
    assert result.exit_code == 3
    assert result.stdout == "partial\n"


def test_run_reads_code_from_stdin_and_file(runner: CliRunner, cli_env: str, tmp_path: Path) -> None:
    assert corral(runner, "run", "-", input="print(40 + 2)\n").stdout == "42\n"
    script = tmp_path / "job.py"
    script.write_text("print('from file')\n")
    assert corral(runner, "run", f"@{script}").stdout == "from file\n"
    missing = corral(runner, "run", f"@{tmp_path / 'nope.py'}")
    assert missing.exit_code == 2


def test_run_keep_leaves_session_running(runner: CliRunner, cli_env: str, fake_manager: FakeManager) -> None:
    result = corral(runner, "run", "--keep", "--name", "kept", "x = 1")
    assert result.exit_code == 0
    assert "session kept" in result.stderr
    (session,) = fake_manager.sessions.values()
    assert session["status"] == "RUNNING"


def test_run_failed_session_is_one_error_line(runner: CliRunner, cli_env: str) -> None:
    result = corral(runner, "run", "--image", BAD_IMAGE, "--name", "broken", "print(1)")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"error: session broken failed: image {BAD_IMAGE} not found on agent i-fake\n"


def test_run_rejects_bad_options_as_usage_errors(runner: CliRunner, cli_env: str) -> None:
    assert corral(runner, "run", "--mem", "lots", "x").exit_code == 2
    assert corral(runner, "run", "--cpu", "-2", "x").exit_code == 2
    assert corral(runner, "run", "--gpus", "1", "--gpu-share", "0.5", "x").exit_code == 2
    assert corral(runner, "run", "--env", "NOEQUALS", "x").exit_code == 2


def test_unsatisfiable_request_is_an_api_error(runner: CliRunner, cli_env: str) -> None:
    result = corral(runner, "run", "--gpus", "16", "print(1)")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no agent can ever provide cuda.device=16")


def test_exec_in_existing_session(runner: CliRunner, cli_env: str) -> None:
    session = new_session(runner, "--name", "ex")
    result = corral(runner, "exec", "ex", "import sys; print('x'); sys.exit(4)")
    assert (result.exit_code, result.stdout) == (4, "x\n")
    assert corral(runner, "exec", session["id"][:6], "print('ok')").stdout == "ok\n"


def test_exec_on_session_not_running_is_an_error(runner: CliRunner, cli_env: str, fake_manager: FakeManager) -> None:
    fake_manager.step_delay = 5
    new_session(runner, "--name", "slow", "--no-wait")
    result = corral(runner, "exec", "slow", "print(1)")
    assert result.exit_code == 1
    assert result.stderr == "error: session slow is PENDING, not RUNNING\n"


def test_json_outputs_are_valid_json(runner: CliRunner, cli_env: str) -> None:
    session = new_session(runner, "--name", "js", "--cpu", "2")
    assert session["status"] == "RUNNING" and session["name"] == "js"
    docs = {}
    for args in (
        ("session", "ls"), ("session", "ls", "--all"), ("session", "ls", "--status", "running,pending"),
        ("session", "info", "js"), ("image", "ls"), ("admin", "agents"), ("whoami",), ("health",),
        ("config", "show"), ("session", "rm", "js"),
    ):
        result = corral(runner, *args, "--json")
        assert result.exit_code == 0, (args, result.output)
        docs[args] = json.loads(result.stdout)
    assert [s["id"] for s in docs[("session", "ls")]] == [session["id"]]
    info = docs[("session", "info", "js")]
    assert [h["status"] for h in info["status_history"]] == ["PENDING", "SCHEDULED", "PREPARING", "RUNNING"]
    assert info["kernels"][0]["container_id"] and info["kernels"][0]["allocation"]
    assert docs[("image", "ls")][0]["name"] == "corral/python:latest"
    assert docs[("admin", "agents")][0]["status"] == "ALIVE"
    assert docs[("whoami",)]["access_key"] == ACCESS_KEY
    assert docs[("config", "show")]["secret_key"] != SECRET_KEY
    assert docs[("session", "rm", "js")][0]["status"] in ("TERMINATING", "TERMINATED")


def test_human_outputs_render(runner: CliRunner, cli_env: str) -> None:
    new_session(runner, "--name", "human", "--mem", "1g")
    ls = corral(runner, "session", "ls")
    assert "human" in ls.stdout and "RUNNING" in ls.stdout and "1.0 GiB" in ls.stdout
    info = corral(runner, "session", "info", "human")
    for text in ("History", "container started", "c0ffeec0ffee", "i-fake", "corral/python:latest"):
        assert text in info.stdout
    assert "log of human" in corral(runner, "session", "logs", "human").stdout
    assert "i-fake" in corral(runner, "admin", "agents").stdout
    assert "corral/python:latest" in corral(runner, "image", "ls").stdout
    assert "admin" in corral(runner, "whoami").stdout


def test_session_events_follow_until_terminal(runner: CliRunner, cli_env: str) -> None:
    new_session(runner, "--image", BAD_IMAGE, "--name", "ev", "--no-wait")
    result = corral(runner, "session", "events", "ev", "--json")
    assert result.exit_code == 0
    statuses = [json.loads(line)["status"] for line in result.stdout.splitlines()]
    assert statuses == ["PENDING", "SCHEDULED", "PREPARING", "ERROR"]
    human = corral(runner, "session", "events", "ev")
    assert "ERROR" in human.stdout and "not found on agent" in human.stdout


def test_session_create_batch_needs_command(runner: CliRunner, cli_env: str, fake_manager: FakeManager) -> None:
    assert corral(runner, "session", "create", "--type", "batch").exit_code == 2
    session = new_session(runner, "--type", "batch", "--", "python", "-c", "print(1)")
    assert fake_manager.sessions[session["id"]]["command"] == ["python", "-c", "print(1)"]


def test_not_found_exits_4(runner: CliRunner, cli_env: str) -> None:
    result = corral(runner, "session", "info", "ghost")
    assert (result.exit_code, result.stderr) == (4, "error: no session 'ghost'\n")


def test_rm_continues_past_missing_sessions(runner: CliRunner, cli_env: str) -> None:
    new_session(runner, "--name", "a")
    result = corral(runner, "session", "rm", "ghost", "a")
    assert result.exit_code == 4
    assert "error: ghost: no session 'ghost'" in result.stderr
    assert "session a" in result.stdout


def test_bad_credentials_exit_3(runner: CliRunner, cli_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_SECRET_KEY", "wrong")
    result = corral(runner, "session", "ls")
    assert result.exit_code == 3
    assert result.stderr == "error: authentication failed: signature does not match\n"


def test_admin_only_command_as_user_exits_3(runner: CliRunner, cli_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_ACCESS_KEY", USER_ACCESS_KEY)
    monkeypatch.setenv("CORRAL_SECRET_KEY", USER_SECRET_KEY)
    result = corral(runner, "admin", "agents")
    assert (result.exit_code, result.stderr) == (3, "error: admin only\n")


def test_missing_config_exits_3_naming_what_to_set(runner: CliRunner) -> None:
    result = corral(runner, "session", "ls")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: no client configuration for CORRAL_ENDPOINT")
    assert "CORRAL_SECRET_KEY" in result.stderr
    assert corral(runner, "config", "show").exit_code == 3


def test_config_file_is_used_and_endpoint_flag_wins(
    runner: CliRunner, manager_url: str, isolated_client_env: Path
) -> None:
    write_client_config(isolated_client_env, ClientConfig("http://127.0.0.1:9", ACCESS_KEY, SECRET_KEY))
    assert corral(runner, "whoami").exit_code == 5
    result = corral(runner, "--endpoint", manager_url, "whoami", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["role"] == "admin"
    shown = json.loads(corral(runner, "--endpoint", manager_url, "config", "show", "--json").stdout)
    assert shown["origin"]["endpoint"] == "--endpoint"
    assert shown["origin"]["access_key"] == f"file {isolated_client_env}"


def test_unreachable_server_exits_5(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("CORRAL_ENDPOINT", endpoint)
    monkeypatch.setenv("CORRAL_ACCESS_KEY", "a")
    monkeypatch.setenv("CORRAL_SECRET_KEY", "b")
    for args in (("run", "print(1)"), ("session", "ls", "--json"), ("health",)):
        result = corral(runner, *args)
        assert result.exit_code == 5, args
        assert result.stdout == ""
        assert result.stderr.startswith(f"error: cannot reach the Corral manager at {endpoint}")
        assert result.stderr.count("\n") == 1


def test_up_calls_the_embedded_launcher(runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    embedded = types.ModuleType("corral.client.embedded_stack")
    embedded.run_embedded = lambda **kw: calls.append(kw)  # type: ignore[attr-defined]
    launcher = types.ModuleType("corral.manager.launcher")
    launcher.run_manager = lambda path: calls.append({"config": path})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "corral.client.embedded_stack", embedded)
    monkeypatch.setitem(sys.modules, "corral.manager.launcher", launcher)
    assert corral(runner, "up", "--data-dir", str(tmp_path), "--port", "9999").exit_code == 0
    assert calls == [{"data_dir": tmp_path, "host": "127.0.0.1", "port": 9999, "mock_gpus": None}]
    config = tmp_path / "manager.toml"
    config.write_text("")
    assert corral(runner, "manager", "start", "--config", str(config)).exit_code == 0
    assert calls[-1] == {"config": config}


def test_server_command_without_its_module_exits_3(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "corral.agent.launcher", None)  # import fails
    config = tmp_path / "agent.toml"
    config.write_text("")
    result = corral(runner, "agent", "start", "--config", str(config))
    assert result.exit_code == 3
    assert result.stderr.startswith("error: cannot start the agent")


def test_image_build_shows_progress(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from corral.kernels.build_progress import BuildProgress  # the real event type (stdlib-only module)

    builder = types.ModuleType("corral.kernels.builder")
    calls: list[dict[str, Any]] = []

    async def build_image(recipe_name: str, *, tag: str | None = None, progress: Any = None,
                          force: bool = False) -> Any:
        calls.append({"recipe": recipe_name, "tag": tag, "force": force})
        for done in range(3):
            progress(BuildProgress("downloading", f"pkg{done} [x]", done, 3))
        progress(BuildProgress("importing", "docker import", 5_000_000, None, unit="bytes"))
        progress(BuildProgress("done", "built"))
        return types.SimpleNamespace(tag="corral/python:3.11", image_id="sha256:" + "12" * 32,
                                     size_bytes=200 << 20, reused=False, seconds=12.5)

    builder.build_image = build_image  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "corral.kernels.builder", builder)
    result = corral(runner, "image", "build", "--force")
    assert result.exit_code == 0, result.output
    assert calls == [{"recipe": "python", "tag": None, "force": True}]
    assert "downloading" in result.stdout and "pkg2 [x]" in result.stdout and "5.0 MB" in result.stdout
    assert result.stdout.rstrip().endswith("built corral/python:3.11 (121212121212, 200.0 MiB, 12.5 s)")


def test_image_build_without_builder_is_a_clear_error(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "corral.kernels.builder", None)
    result = corral(runner, "image", "build")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: the image builder is not available")
