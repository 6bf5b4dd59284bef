"""Resource groups, policies and session placement with the CLI as a subprocess against a real `corral up`
(manager, agent, Docker): an admin sets a policy and a group, a user's `corral run` is placed, refused with one
readable line, or runs; exit statuses as documented."""
from __future__ import annotations

import json
import time

import pytest

from tests.e2e.test_cli_end_to_end import CorralUp, base_image, up  # noqa: F401 - fixtures
from tests.e2e.test_project_cli import as_user


@pytest.mark.docker
@pytest.mark.slow
def test_groups_policies_and_placement(up: CorralUp) -> None:  # noqa: F811
    bob = as_user(up, "bob")
    groups = json.loads(up.corral("admin", "group", "ls", "--json").stdout)
    assert [(g["name"], g["alive_agents"]) for g in groups] == [("default", 1)]  # the local agent's group

    made = up.corral("admin", "group", "create", "batch", "--session-types", "batch", "--allow-user", "bob")
    assert made.returncode == 0 and "takes batch sessions; for user bob" in made.stdout, made.stderr
    assert [g["name"] for g in json.loads(bob("groups", "--json").stdout)] == ["batch", "default"]
    wrong_type = bob("run", "--group", "batch", "print(1)")
    assert wrong_type.returncode == 1 and wrong_type.stderr.strip() == (
        "error: resource group 'batch' does not take interactive sessions (it takes: batch)")
    missing = bob("run", "--group", "nope", "print(1)")
    assert missing.returncode == 4 and missing.stderr.strip() == (
        "error: no resource group 'nope'; you may use: batch, default")

    assert up.corral("admin", "policy", "create", "tiny", "--max-mem", "256m", "--max-sessions", "2").returncode == 0
    assert up.corral("admin", "user", "set", "bob", "--policy", "tiny").returncode == 0
    too_big = bob("run", "--mem", "1g", "print(1)")
    assert too_big.returncode == 1 and too_big.stderr.strip() == (
        "error: this request can never start: user quota: 1.0 GiB memory is more than the limit of 256.0 MiB")
    assert bob("run", "--priority", "90", "print(1)").returncode == 3  # above 50: admins only

    ran = bob("run", "--mem", "128m", "--priority", "20", "--keep", "--name", "placed", "print(6 * 7)")
    assert ran.returncode == 0 and ran.stdout == "42\n", ran.stderr
    info = json.loads(bob("session", "info", "placed", "--json").stdout)
    assert (info["resource_group"], info["project"], info["priority"]) == ("default", None, 20)
    # At the policy's two sessions, a third waits, saying why; `corral queue` and `session info` show it.
    assert bob("session", "create", "--mem", "64m", "--cpu", "0.1", "--name", "second").returncode == 0
    waiting = bob("session", "create", "--mem", "64m", "--cpu", "0.1", "--name", "third", "--no-wait")
    assert waiting.returncode == 0, waiting.stderr
    queued = json.loads(bob("queue", "--json").stdout)
    for _ in range(50):
        if queued and queued[0]["entries"][0]["reason"].startswith("user quota"):
            break
        time.sleep(0.2)
        queued = json.loads(bob("queue", "--json").stdout)
    entry = queued[0]["entries"][0]
    assert (queued[0]["group"], entry["name"], entry["position"]) == ("default", "third", 1)
    assert entry["reason"] == "user quota: 2 of 2 sessions running"
    assert "third" in bob("queue").stdout
    shown = bob("session", "info", "third")
    assert "queue: position 1 of 1 in resource group default (fifo + backfill)" in shown.stdout, shown.stdout
    for name in ("third", "second"):
        assert bob("session", "rm", name).returncode == 0
    assert bob("session", "rm", "placed").returncode == 0
    used = json.loads(bob("usage", "--json").stdout)
    assert used["by"] == "user" and {r["holder"] for r in used["rows"]} == {"bob"}
    assert bob("usage", "--csv").stdout.splitlines()[0] == (
        "day,user,resource_group,cpu_core_hours,gpu_hours,mem_gib_hours,sessions")
    assert "total" in bob("usage").stdout
    assert up.corral("admin", "policy", "rm", "tiny").returncode == 1  # bob is held to it
