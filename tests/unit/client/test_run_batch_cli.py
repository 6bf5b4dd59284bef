"""``corral run … -- COMMAND`` without a server: how the command line is read (``--`` makes it a batch
command, --cluster-size without it is a usage error) and what `run_batch` makes of the session's end,
with an in-memory client in place of the SDK's."""
from __future__ import annotations

from typing import Any, AsyncIterator, Iterable

import pytest
from click.testing import CliRunner, Result

from corral.client.cli import context as cli_context
from corral.client.cli import run_batch as run_batch_module
from corral.client.cli import run_cmd
from corral.client.cli.main import main
from corral.client.models import Session


def corral(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials in the environment (nothing listens there: no test here reaches a manager)."""
    monkeypatch.setenv("CORRAL_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("CORRAL_ACCESS_KEY", "AKTESTRUNBATCH01")
    monkeypatch.setenv("CORRAL_SECRET_KEY", "run-batch-secret")


@pytest.fixture
def batch_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """`run_batch` replaced: each call's arguments are recorded; it exits 7."""
    calls: list[dict[str, Any]] = []

    async def fake_run_batch(client: Any, command: Any, **options: Any) -> int:
        calls.append({"command": tuple(command), **options})
        return 7

    monkeypatch.setattr(run_batch_module, "run_batch", fake_run_batch)
    return calls


@pytest.fixture
def code_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`corral run CODE`'s own runner replaced: the Python source it would run is recorded."""
    calls: list[str] = []

    async def fake_run(client: Any, code: str, **options: Any) -> int:
        calls.append(code)
        return 0

    monkeypatch.setattr(run_cmd, "_run", fake_run)
    return calls


def error_lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


# -- the command line -------------------------------------------------------------------------------


def test_a_command_after_double_dash_is_a_batch_command(
    runner: CliRunner, configured: None, batch_calls: list[dict[str, Any]], code_calls: list[str]
) -> None:
    result = corral(runner, "run", "--cpu", "2", "--", "python", "train.py", "--epochs", "3")
    assert result.exit_code == 7  # what run_batch answered: main1's exit status
    (call,) = batch_calls
    assert call["command"] == ("python", "train.py", "--epochs", "3")  # options after `--` are the command's
    assert (call["cluster_size"], call["cluster_mode"]) == (1, "single-node")
    assert call["resources"]["cpu"] == "2"
    assert call["name"].startswith("run-") and not call["keep"]
    assert not code_calls


def test_a_cluster_run_passes_size_and_mode(
    runner: CliRunner, configured: None, batch_calls: list[dict[str, Any]]
) -> None:
    result = corral(runner, "run", "--cluster-size", "4", "--cluster-mode", "multi-node", "--name", "job", "--keep",
                    "--", "torchrun --nnodes $CORRAL_CLUSTER_SIZE train.py")
    assert result.exit_code == 7
    (call,) = batch_calls
    assert call["command"] == ("torchrun --nnodes $CORRAL_CLUSTER_SIZE train.py",)  # one argument: a shell line
    assert (call["cluster_size"], call["cluster_mode"], call["name"], call["keep"]) == (4, "multi-node", "job", True)


def test_without_double_dash_the_argument_is_python_code(
    runner: CliRunner, configured: None, batch_calls: list[dict[str, Any]], code_calls: list[str]
) -> None:
    result = corral(runner, "run", "print('--')")  # `--` inside the code is not the separator
    assert result.exit_code == 0, result.output
    assert code_calls == ["print('--')"] and not batch_calls


@pytest.mark.parametrize("with_config", [True, False])
def test_cluster_size_without_a_command_is_one_usage_error(
    runner: CliRunner, batch_calls: list[dict[str, Any]], code_calls: list[str], with_config: bool,
    request: pytest.FixtureRequest,
) -> None:
    """Refused before anything else (configured or not: the command line is wrong either way)."""
    if with_config:
        request.getfixturevalue("configured")
    result = corral(runner, "run", "--cluster-size", "2", "print(1)")
    assert result.exit_code == 2
    assert error_lines(result) == ["Error: --cluster-size runs a command in every kernel: put it after `--`"]
    assert not batch_calls and not code_calls


def test_other_bad_command_lines_are_usage_errors(
    runner: CliRunner, configured: None, batch_calls: list[dict[str, Any]], code_calls: list[str]
) -> None:
    several = corral(runner, "run", "print(1)", "print(2)")
    assert several.exit_code == 2
    assert error_lines(several) == ["Error: give the Python code as one argument, or a command after `--`"]
    assert corral(runner, "run", "--cluster-size", "65", "--", "true").exit_code == 2  # above MAX_CLUSTER_SIZE
    assert corral(runner, "run", "--cluster-size", "0", "--", "true").exit_code == 2
    assert corral(runner, "run", "--cluster-mode", "ring", "--", "true").exit_code == 2
    assert corral(runner, "run", "--").exit_code == 2  # `--` and no command
    assert not batch_calls and not code_calls


# -- run_batch against an in-memory client ------------------------------------------------------------

ENDED = {"TERMINATED", "ERROR", "CANCELLED"}


class FakeClient:
    """Just what `run_batch` uses of `AsyncCorralClient`: the session runs, prints, and ends as told."""

    def __init__(self, final: dict[str, Any], chunks: Iterable[str] = ("[main1] hello\n", "[sub1] hello\n")) -> None:
        self.final = final
        self.chunks = list(chunks)
        self.created: dict[str, Any] = {}
        self.waits: list[set[str]] = []
        self.destroyed: list[str] = []

    def _session(self, **fields: Any) -> Session:
        doc = {"id": "0123456789abcdef", "name": self.created.get("name", "job"), "type": "batch",
               "cluster_size": self.created.get("cluster_size", 1), **fields}
        return Session.from_json(doc)

    async def __aenter__(self) -> "FakeClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    async def create_session(self, **body: Any) -> Session:
        self.created = body
        return self._session(status="PENDING")

    async def wait_for_status(self, ref: str, statuses: Iterable[str], timeout: float | None = None,
                              **_: Any) -> Session:
        wanted = set(statuses)
        self.waits.append(wanted)
        if "RUNNING" in wanted:
            return self._session(status="RUNNING")
        return self._session(**self.final)

    async def get_session(self, ref: str) -> Session:
        return self._session(**self.final)

    async def follow_logs(self, ref: str, *, kernel: str | None = None) -> AsyncIterator[str]:
        for chunk in self.chunks:
            yield chunk

    async def destroy_session(self, ref: str) -> Session:
        self.destroyed.append(ref)
        return self._session(status="TERMINATED")


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> list[FakeClient]:
    """`corral`'s client replaced by the next `FakeClient` put in this list."""
    clients: list[FakeClient] = []
    monkeypatch.setattr(cli_context.CliState, "client", lambda self, require_credentials=True: clients[0])
    return clients


@pytest.mark.parametrize("final, expected", [
    ({"status": "TERMINATED", "exit_code": 0, "status_reason": "main1's batch command succeeded with exit code 0"}, 0),
    ({"status": "TERMINATED", "exit_code": 3, "status_reason": "main1's batch command failed with exit code 3"}, 3),
    ({"status": "TERMINATED", "exit_code": 1, "status_reason": "sub1 failed: exit code 1"}, 1),
    ({"status": "ERROR", "exit_code": None, "status_reason": "sub1 could not start: image x not found"}, 1),
])
def test_run_batch_exits_with_the_sessions_exit_status(
    runner: CliRunner, fake_client: list[FakeClient], final: dict[str, Any], expected: int
) -> None:
    client = FakeClient(final)
    fake_client.append(client)
    result = corral(runner, "run", "--cluster-size", "2", "--name", "job", "--", "python", "-c", "print(1)")
    assert result.exit_code == expected, result.output
    assert result.stdout == "[main1] hello\n[sub1] hello\n"  # every kernel's output, as the manager labels it
    created = client.created
    assert (created["type"], created["name"], created["command"]) == ("batch", "job", ["python", "-c", "print(1)"])
    assert (created["cluster_size"], created["cluster_mode"]) == (2, "single-node")
    assert client.waits[-1] == ENDED
    if final["status"] != "TERMINATED":
        assert result.stderr == f"error: session job ended {final['status']}: {final['status_reason']}\n"
    elif expected:
        assert result.stderr == f"session job: {final['status_reason']}\n"
    else:
        assert result.stderr == ""


def test_run_batch_sends_one_argument_as_a_shell_line(runner: CliRunner, fake_client: list[FakeClient]) -> None:
    client = FakeClient({"status": "TERMINATED", "exit_code": 0})
    fake_client.append(client)
    assert corral(runner, "run", "--", "echo hi && exit 0").exit_code == 0
    assert client.created["command"] == "echo hi && exit 0"
    assert "cluster_size" not in client.created or client.created["cluster_size"] == 1
