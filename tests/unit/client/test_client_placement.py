"""`corral run` / `corral session create` send --group, --project and --priority (fake manager); the policy
commands' duration and limit parsing."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from corral.client.cli.main import main
from corral.client.cli.resource_policy_cmd import CLEARED, _body, format_duration, parse_duration
from fake_corral_manager import FakeManager


def _created(fake_manager: FakeManager) -> list[dict]:
    return [json.loads(r.body) for r in fake_manager.requests if r.method == "POST" and r.raw_path == "/api/v1/sessions"]


def test_run_and_create_send_the_placement(cli_env: str, fake_manager: FakeManager) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["run", "--group", "gpu", "--project", "ml", "--priority", "10", "print(1)"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["session", "create", "--no-wait", "--json", "--priority", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["priority"] == 0
    sent = _created(fake_manager)
    assert {k: sent[0].get(k) for k in ("resource_group", "project", "priority")} == {
        "resource_group": "gpu", "project": "ml", "priority": 10}
    assert "resource_group" not in sent[1] and "project" not in sent[1] and sent[1]["priority"] == 0


def test_priority_out_of_range_is_a_usage_error(cli_env: str) -> None:
    result = CliRunner().invoke(main, ["session", "create", "--priority", "101"])
    assert result.exit_code == 2 and "0<=x<=100" in result.output


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("24h", 86400), ("2d", 172800),
                                           ("1h30m", 5400), ("1.5h", 5400), ("1w", 604800)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "1x", "h", "-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_duration_display() -> None:
    assert [format_duration(s) for s in (None, 86400, 7200, 5400, 90, 1.5)] == ["-", "1d", "2h", "90m", "90s", "1.5s"]


def test_limit_bodies() -> None:
    given = {"max_concurrent_sessions": 4, "slot_mem": 1 << 30, "slot_cuda_device": CLEARED, "idle_timeout_s": CLEARED}
    assert _body(given, creating=True) == {"max_concurrent_sessions": 4, "max_slots": {"mem": 1 << 30}}
    assert _body(given, creating=False) == {"max_concurrent_sessions": 4, "idle_timeout_s": None,
                                            "max_slots": {"mem": 1 << 30, "cuda.device": None}}
