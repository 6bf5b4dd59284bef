"""Waiting for resources, second users (login, config set), and SDK consistency: CLI and SDK
against the fake manager."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import corral.client as sdk
from corral.client import api as api_module
from corral.client.api import AsyncCorralClient
from corral.client.cli.main import main
from corral.client.config import ClientConfig
from corral.client.models import StatusChange
from corral.client.sync import ASYNC_ONLY, CorralClient
from corral.common import errors as common_errors
from fake_corral_manager import ACCESS_KEY, SECRET_KEY, USER_ACCESS_KEY, USER_SECRET_KEY, FakeManager

QUEUED = "waiting for resources: no agent in group 'default' has 4 CPUs free"


def corral(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    return runner.invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def fast_reason_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_module, "PENDING_REASON_POLL_S", 0.05)


# -- §3 waiting for resources ----------------------------------------------------------------


async def test_wait_reports_the_pending_reason_and_says_it_on_timeout(
    client: AsyncCorralClient, fake_manager: FakeManager, fast_reason_polls: None
) -> None:
    fake_manager.pending_reason = QUEUED
    session = await client.create_session(name="queued")
    seen: list[StatusChange] = []
    with pytest.raises(sdk.WaitTimeout) as caught:
        await client.wait_for_status(session.id, {"RUNNING"}, timeout=0.5, on_progress=seen.append)
    assert [c.reason for c in seen if c.is_progress] == [QUEUED]  # once, not at every poll
    assert str(caught.value).endswith(f"within 0.5s (last status: PENDING: {QUEUED})")
    assert caught.value.extra == {"session_id": session.id, "session_status": "PENDING", "reason": QUEUED}
    # Without a callback there is no polling, but the timeout still says why.
    with pytest.raises(sdk.WaitTimeout, match="no agent in group"):
        await client.wait_for_status(session.id, {"RUNNING"}, timeout=0.2)
    assert (await client.get_session(session.id)).status == "PENDING"  # a wait leaves it queued


def test_create_shows_why_it_waits_and_leaves_it_queued(
    runner: CliRunner, cli_env: str, fake_manager: FakeManager, fast_reason_polls: None
) -> None:
    fake_manager.pending_reason = QUEUED
    result = corral(runner, "session", "create", "--name", "big", "--cpu", "4", "--timeout", "0.6")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"session big: {QUEUED}"  # live, while waiting
    assert lines[-1] == (
        f"error: session big did not start within 0.6s (last status PENDING: {QUEUED}); it is still queued and "
        "starts once resources free up: `corral session rm big` cancels it, `corral session events big` follows it"
    )
    assert len(lines) == 2
    (session,) = fake_manager.sessions.values()
    assert session["status"] == "PENDING"
    help_text = corral(runner, "session", "create", "--help").stdout
    assert "stays queued" in help_text and "--no-wait" in help_text and "sh -c" in help_text


def test_run_cancels_the_session_it_made_when_it_times_out(
    runner: CliRunner, cli_env: str, fake_manager: FakeManager, fast_reason_polls: None
) -> None:
    fake_manager.pending_reason = QUEUED
    result = corral(runner, "run", "--name", "r1", "--timeout", "0.4", "print(1)")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: session r1 did not start within 0.4s (last status PENDING: {QUEUED}); cancelled it"
    )
    (session,) = fake_manager.sessions.values()
    assert session["status"] == "CANCELLED"

    kept = corral(runner, "run", "--name", "r2", "--keep", "--timeout", "0.4", "print(1)")
    assert kept.exit_code == 1
    assert kept.stderr.splitlines()[-1].endswith("; kept (--keep): `corral session rm r2` cancels it")
    assert [s["status"] for s in fake_manager.sessions.values() if s["name"] == "r2"] == ["PENDING"]


# -- §4 second users -------------------------------------------------------------------------


def test_missing_config_points_at_login(runner: CliRunner) -> None:
    result = corral(runner, "session", "ls")
    assert result.exit_code == 3
    assert "run `corral login ENDPOINT` (ask your admin for keys) or `corral up` to run a local stack" in result.stderr


def test_admin_user_create_prints_a_login_line_that_works(
    runner: CliRunner, cli_env: str, isolated_client_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = corral(runner, "admin", "user", "create", "carol")
    assert made.exit_code == 0, made.output
    login_line = made.stdout.splitlines()[-1].strip()
    assert login_line.startswith(f"corral login {cli_env} --access-key AK")
    as_json = json.loads(corral(runner, "admin", "user", "create", "dave", "--json").stdout)
    assert as_json["access_key"] and as_json["secret_key"]

    for name in ("CORRAL_ENDPOINT", "CORRAL_ACCESS_KEY", "CORRAL_SECRET_KEY"):
        monkeypatch.delenv(name)
    logged_in = corral(runner, *login_line.split()[1:])
    assert logged_in.exit_code == 0, logged_in.output
    assert logged_in.stdout == f"logged in to {cli_env} as alice (user); saved in {isolated_client_env}\n"
    saved = tomllib.loads(isolated_client_env.read_text())
    assert saved["endpoint"] == cli_env and saved["access_key"] == login_line.split()[4]
    assert isolated_client_env.stat().st_mode & 0o777 == 0o600
    assert corral(runner, "whoami").stdout.startswith("alice (user)")


def test_login_reads_keys_from_stdin_and_checks_them_first(
    runner: CliRunner, manager_url: str, isolated_client_env: Path
) -> None:
    bad = corral(runner, "login", manager_url, input=f"{USER_ACCESS_KEY}\nnot-the-secret\n")
    assert bad.exit_code == 3
    assert bad.stderr.startswith("error: authentication failed")
    assert not isolated_client_env.exists()  # nothing written for keys the manager refuses

    pasted = f"CORRAL_ACCESS_KEY={USER_ACCESS_KEY}\nCORRAL_SECRET_KEY={USER_SECRET_KEY}\n"
    good = corral(runner, "login", manager_url, input=pasted)
    assert good.exit_code == 0, good.output
    assert tomllib.loads(isolated_client_env.read_text())["secret_key"] == USER_SECRET_KEY
    # The endpoint is remembered: logging in again (as the admin) needs only the keys.
    again = corral(runner, "login", input=f"{ACCESS_KEY} {SECRET_KEY}\n")
    assert again.exit_code == 0 and "as admin (admin)" in again.stdout

    missing = corral(runner, "login", manager_url, "--access-key", ACCESS_KEY, input="")
    assert missing.exit_code == 3 and missing.stderr.startswith("error: corral login needs")
    unreachable = corral(runner, "login", "http://127.0.0.1:9", input=f"{ACCESS_KEY} {SECRET_KEY}\n")
    assert unreachable.exit_code == 5


def test_config_set_then_show(runner: CliRunner, manager_url: str, isolated_client_env: Path) -> None:
    assert corral(runner, "config", "set", "endpoint", manager_url + "/").stdout.startswith(f"endpoint = {manager_url} ")
    assert corral(runner, "config", "show").exit_code == 3  # no keypair yet
    assert corral(runner, "config", "set", "access-key", USER_ACCESS_KEY).exit_code == 0
    shown = corral(runner, "config", "set", "secret_key", USER_SECRET_KEY).stdout
    assert USER_SECRET_KEY not in shown and "user…" in shown
    show = corral(runner, "config", "show", "--json")
    assert show.exit_code == 0
    assert json.loads(show.stdout)["access_key"] == USER_ACCESS_KEY
    assert corral(runner, "whoami").exit_code == 0
    assert corral(runner, "config", "set", "colour", "red").exit_code == 2
    assert corral(runner, "config", "set", "endpoint", "ftp://x").exit_code == 3


def test_ls_all_users_shows_owners_and_is_admin_only(
    runner: CliRunner, cli_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert corral(runner, "session", "create", "--no-wait", "--name", "mine").exit_code == 0
    monkeypatch.setenv("CORRAL_ACCESS_KEY", USER_ACCESS_KEY)
    monkeypatch.setenv("CORRAL_SECRET_KEY", USER_SECRET_KEY)
    assert corral(runner, "session", "create", "--no-wait", "--name", "theirs").exit_code == 0
    denied = corral(runner, "session", "ls", "--all-users")
    assert denied.exit_code == 3 and "only admins" in denied.stderr
    assert "mine" not in corral(runner, "session", "ls").stdout
    monkeypatch.setenv("CORRAL_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("CORRAL_SECRET_KEY", SECRET_KEY)
    listed = corral(runner, "session", "ls", "--all-users")
    assert listed.exit_code == 0
    assert listed.stdout.split()[0] == "OWNER"
    assert "mine" in listed.stdout and "theirs" in listed.stdout
    assert {s["name"] for s in json.loads(corral(runner, "session", "ls", "-A", "--json").stdout)} == {"mine", "theirs"}


# -- §7 the SDK ------------------------------------------------------------------------------


def test_rm_of_an_ended_session_is_not_an_error(runner: CliRunner, cli_env: str) -> None:
    assert corral(runner, "session", "create", "--name", "done").exit_code == 0
    assert corral(runner, "session", "rm", "done").stdout.endswith(" is TERMINATED\n")
    again = corral(runner, "session", "rm", "done")
    assert again.exit_code == 0
    assert again.stdout.startswith("session done (") and again.stdout.endswith(" is already TERMINATED\n")


async def test_destroying_an_ended_session_answers_its_final_state(client: AsyncCorralClient) -> None:
    session = await client.create_session(name="twice")
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=10)
    await client.destroy_session(session.id)
    assert (await client.destroy_session(session.id)).status == "TERMINATED"


def test_one_batch_command_argument_is_a_shell_line(runner: CliRunner, cli_env: str, fake_manager: FakeManager) -> None:
    one = corral(runner, "session", "create", "--no-wait", "--type", "batch", "--name", "b1", "--", "echo hi && exit 4")
    several = corral(runner, "session", "create", "--no-wait", "--type", "batch", "--name", "b2", "--", "echo", "a b")
    assert one.exit_code == several.exit_code == 0
    commands = {s["name"]: s["command"] for s in fake_manager.sessions.values()}
    assert commands == {"b1": ["sh", "-c", "echo hi && exit 4"], "b2": ["echo", "a b"]}
    sent = [json.loads(r.body)["command"] for r in fake_manager.requests if r.method == "POST"]
    assert sent == ["echo hi && exit 4", ["echo", "a b"]]


def test_errors_are_exported_from_corral_client() -> None:
    from corral.client import CorralError, NotFound, PermissionDenied, WaitTimeout  # noqa: F401

    assert sdk.CorralError is common_errors.CorralError
    for name in ("ConfigError", "InvalidRequest", "AuthenticationFailed", "PermissionDenied", "NotFound", "Conflict",
                 "UnsatisfiableRequest", "QuotaExceeded", "ServiceUnavailable", "SessionFailed", "WaitTimeout",
                 "ExecutionStreamBroken"):
        assert name in sdk.__all__ and issubclass(getattr(sdk, name), sdk.CorralError)


def _public(obj: object) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


def test_the_sync_and_async_clients_have_the_same_methods() -> None:
    config = ClientConfig(endpoint="http://127.0.0.1:9", access_key="AK", secret_key="SK")
    with CorralClient(config) as blocking:
        sync_names = _public(blocking)
    async_names = _public(AsyncCorralClient(config))
    assert async_names - sync_names == set(ASYNC_ONLY), "add the method to CorralClient, or to ASYNC_ONLY saying why"
    assert sync_names - async_names == set(), "add the method to AsyncCorralClient too"
    assert all(ASYNC_ONLY.values())
    # Same parameters, too (the blocking twin of each coroutine takes what it takes).
    import inspect

    for name in sorted(sync_names - {"config", "endpoint", "close"}):
        sync_params = list(inspect.signature(getattr(CorralClient, name)).parameters)
        async_params = list(inspect.signature(getattr(AsyncCorralClient, name)).parameters)
        assert sync_params == async_params, name
