"""`corral admin group|policy …`, `corral admin user set`, `corral admin project set`, `corral groups` and the
placement options of `corral session create` through the real CLI against a real manager (no agent, no
Docker; SQLite and PostgreSQL): readable one-line errors with the documented exit statuses, --json for scripts."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import CliRunner

from corral.client.cli.main import main as cli

from .cluster import LiveCluster

Keys = tuple[str, str]


@pytest.fixture
def live(manager_only: LiveCluster) -> LiveCluster:
    return manager_only


def _invoke(live: LiveCluster, keys: Keys, args: tuple[str, ...]) -> Any:
    env = {"CORRAL_ENDPOINT": live.manager.url, "CORRAL_ACCESS_KEY": keys[0], "CORRAL_SECRET_KEY": keys[1],
           "CORRAL_CONFIG": str(live.root / "no-client.toml"), "COLUMNS": "250"}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


class Cli:
    def __init__(self, live: LiveCluster, keys: Keys) -> None:
        self.live, self.keys = live, keys

    async def __call__(self, *args: str) -> Any:
        return await asyncio.to_thread(_invoke, self.live, self.keys, args)

    async def ok(self, *args: str) -> Any:
        result = await self(*args)
        assert result.exit_code == 0, (args, result.output)
        return result

    async def json(self, *args: str) -> Any:
        return json.loads((await self.ok(*args, "--json")).stdout)

    async def fails(self, status: int, *args: str) -> str:
        result = await self(*args)
        assert result.exit_code == status, (args, result.exit_code, result.output)
        lines = result.stderr.strip().splitlines()
        if status != 2:  # usage errors come with click's usage lines first, like every command's
            assert len(lines) == 1, result.stderr
        return lines[-1]


async def test_group_commands(live: LiveCluster) -> None:
    admin = Cli(live, (live.admin_access_key, live.admin_secret_key))
    bob = Cli(live, await live.add_user("bob"))
    await live.client().create_project("ml")

    made = await admin.json("admin", "group", "create", "gpu", "--queue-policy", "fair-share", "--no-backfill",
                            "--preemption", "--scorer", "topology:2", "--scorer", "dispersed",
                            "--session-types", "batch", "--allow-user", "bob", "--allow-project", "ml",
                            "--description", "the A100s")
    assert (made["queue_policy"], made["backfill"], made["preemption"]) == ("fair-share", False, True)
    assert made["scorers"] == [{"name": "topology", "weight": 2.0}, {"name": "dispersed", "weight": 1.0}]
    assert (made["allowed_session_types"], made["allowed_users"], made["allowed_projects"]) == (
        ["batch"], ["bob"], ["ml"])
    plain = await admin.ok("admin", "group", "create", "cpu")
    assert plain.stdout.startswith("resource group cpu created: fifo, backfill; scorers topology; takes "
                                   "interactive, batch sessions; for everyone")

    assert (await admin.fails(1, "admin", "group", "create", "gpu")) == "error: resource group 'gpu' exists already"
    line = await admin.fails(2, "admin", "group", "create", "x", "--scorer", "best")
    assert "unknown scorer 'best'" in line
    assert "weight must be a number > 0" in await admin.fails(2, "admin", "group", "create", "x", "--scorer",
                                                              "topology:0")
    assert "session types are interactive, batch" in await admin.fails(2, "admin", "group", "create", "x",
                                                                       "--session-types", "notebook")
    assert (await admin.fails(1, "admin", "group", "create", "x", "--allow-user", "ghost")) == (
        "error: no such user: ghost")
    assert (await bob.fails(3, "admin", "group", "create", "x")) == "error: this needs an admin keypair"

    listed = await admin.ok("admin", "group", "ls")
    header = listed.stdout.splitlines()[0].split()
    assert header[:6] == ["NAME", "QUEUE", "BACKFILL", "PREEMPT", "SCORERS", "TYPES"] and "ALLOWED" in header
    assert "user bob, project ml" in listed.stdout and "topology:2, dispersed" in listed.stdout
    assert [g["name"] for g in await admin.json("admin", "group", "ls")] == ["cpu", "default", "gpu"]
    # Users see the groups they may use, without who else may.
    assert [g["name"] for g in await bob.json("groups")] == ["cpu", "default", "gpu"]
    assert "ALLOWED" not in (await bob.ok("groups")).stdout

    changed = await admin.json("admin", "group", "set", "gpu", "--queue-policy", "drf", "--allow-user", "none")
    assert changed["queue_policy"] == "drf" and changed["allowed_users"] == [] and changed["allowed_projects"] == [
        "ml"] and changed["backfill"] is False
    assert [g["name"] for g in await bob.json("groups")] == ["cpu", "default"]
    opened = await admin.json("admin", "group", "set", "gpu", "--allow-everyone", "--backfill")
    assert opened["allowed_users"] is None and opened["allowed_projects"] is None and opened["backfill"] is True
    assert "nothing to change" in await admin.fails(2, "admin", "group", "set", "gpu")
    assert (await admin.fails(4, "admin", "group", "set", "nope", "--backfill")) == (
        "error: no resource group 'nope'")
    assert "default" in (await admin.ok("admin", "group", "info", "default")).stdout

    assert (await admin.fails(1, "admin", "group", "rm", "default")) == (
        "error: the 'default' resource group cannot be deleted")
    assert (await admin.ok("admin", "group", "rm", "cpu")).stdout.strip() == "resource group cpu deleted"
    assert (await admin.fails(4, "admin", "group", "rm", "cpu")) == "error: no resource group 'cpu'"


async def test_policy_user_and_project_commands(live: LiveCluster) -> None:
    admin = Cli(live, (live.admin_access_key, live.admin_secret_key))
    bob = Cli(live, await live.add_user("bob"))
    client = live.client()
    await client.create_project("ml")
    await client.add_project_member("ml", "bob")

    made = await admin.json("admin", "policy", "create", "small", "--max-sessions", "4", "--max-pending", "10",
                            "--max-gpus", "4", "--max-shares", "2", "--max-cpu", "32", "--max-mem", "256g",
                            "--max-cluster-size", "4", "--max-lifetime", "24h", "--idle-timeout", "1h30m")
    assert made["max_slots"] == {"cpu": "32", "cuda.device": "4", "cuda.shares": "2", "mem": str(256 << 30)}
    assert (made["max_concurrent_sessions"], made["max_pending_sessions"], made["max_cluster_size"]) == (4, 10, 4)
    assert (made["max_session_lifetime_s"], made["idle_timeout_s"]) == (86400, 5400)
    said = await admin.ok("admin", "policy", "create", "tiny", "--max-sessions", "1", "--max-mem", "none")
    assert said.stdout.strip() == "resource policy tiny created: sessions 1"

    for args, needle in ((("--max-sessions", "many"), "not a whole number"),
                         (("--max-mem", "lots"), "not a size"),
                         (("--max-lifetime", "soon"), "not a duration"),
                         (("--max-cluster-size", "0"), "at least 1"),
                         (("--max-shares", "-1"), "not a number >= 0")):
        assert needle in await admin.fails(2, "admin", "policy", "create", "p", *args)
    assert "multiple of 0.01" in await admin.fails(1, "admin", "policy", "create", "p", "--max-shares", "0.001")
    assert (await admin.fails(1, "admin", "policy", "create", "small")) == (
        "error: resource policy 'small' exists already")
    assert (await bob.fails(3, "admin", "policy", "ls")) == "error: this needs an admin keypair"

    changed = await admin.json("admin", "policy", "set", "small", "--max-mem", "none", "--idle-timeout", "none",
                               "--max-sessions", "2")
    assert "mem" not in changed["max_slots"] and changed["idle_timeout_s"] is None
    assert changed["max_concurrent_sessions"] == 2 and changed["max_pending_sessions"] == 10
    table = (await admin.ok("admin", "policy", "ls")).stdout
    assert table.splitlines()[0].split()[:3] == ["NAME", "SESSIONS", "PENDING"] and " 1d " in table

    await admin.ok("admin", "group", "create", "gpu")
    user = await admin.json("admin", "user", "set", "bob", "--policy", "small", "--default-group", "gpu",
                            "--default-project", "ml", "--fair-share", "2")
    assert (user["resource_policy"], user["default_group"], user["default_project"], user["fair_share"]) == (
        "small", "gpu", "ml", 2.0)
    shown = (await admin.ok("admin", "user", "ls")).stdout
    assert "small" in shown and "gpu" in shown
    assert (await admin.fails(1, "admin", "user", "set", "bob", "--policy", "nope")) == (
        "error: no resource policy 'nope'")
    assert "not a member of project" in await admin.fails(1, "admin", "user", "set", "admin", "--default-project",
                                                         "ml")
    assert "> 0" in await admin.fails(2, "admin", "user", "set", "bob", "--fair-share", "0")
    assert "error: no user 'nobody'" == await admin.fails(4, "admin", "user", "set", "nobody", "--policy", "none")

    project = await admin.json("admin", "project", "set", "ml", "--policy", "tiny", "--fair-share", "3")
    assert (project["resource_policy"], project["fair_share"]) == ("tiny", 3.0)
    assert (await admin.ok("admin", "project", "set", "ml", "--policy", "none")).stdout.strip() == (
        "project ml: policy none, fair share 3")
    assert (await bob.fails(3, "admin", "project", "set", "ml", "--fair-share", "1")) == (
        "error: this needs an admin keypair")

    assert "in use by user bob" in await admin.fails(1, "admin", "policy", "rm", "small")
    cleared = await admin.json("admin", "user", "set", "bob", "--policy", "none", "--default-group", "none")
    assert cleared["resource_policy"] is None and cleared["default_group"] is None
    assert (await admin.ok("admin", "policy", "rm", "small")).stdout.strip() == "resource policy small deleted"
    assert [p["name"] for p in await admin.json("admin", "policy", "ls")] == ["tiny"]


async def test_session_create_places_by_group_project_and_priority(live: LiveCluster) -> None:
    admin = Cli(live, (live.admin_access_key, live.admin_secret_key))
    bob = Cli(live, await live.add_user("bob"))
    client = live.client()
    await client.create_project("ml")
    await client.add_project_member("ml", "bob")
    await client.create_resource_group("gpu", allowed_projects=["ml"])

    made = await bob.json("session", "create", "--no-wait", "--mem", "64m", "--group", "gpu", "--project", "ml",
                          "--priority", "20", "--name", "placed")
    assert (made["resource_group"], made["project"], made["priority"]) == ("gpu", "ml", 20)
    listed = (await bob.ok("session", "ls")).stdout
    header = listed.splitlines()[0].split()
    assert ["GROUP", "PROJECT", "PRIO"] == header[header.index("GROUP"):header.index("GROUP") + 3]
    row = next(line for line in listed.splitlines() if "placed" in line)
    assert " gpu " in row and " ml " in row and " 20 " in row
    info = (await bob.ok("session", "info", "placed")).stdout
    assert "Group" in info and "Priority" in info and "20" in info

    assert (await bob.fails(3, "session", "create", "--no-wait", "--group", "gpu")) == (
        "error: you may not use resource group 'gpu' unless the session counts against project ml (--project)")
    assert (await bob.fails(4, "session", "create", "--no-wait", "--group", "nope")) == (
        "error: no resource group 'nope'; you may use: default, gpu")
    assert (await bob.fails(3, "session", "create", "--no-wait", "--priority", "80")) == (
        "error: priority 80 is for admins; users may ask for 0-50")
    assert "0<=x<=100" in await bob.fails(2, "session", "create", "--no-wait", "--priority", "101")
    urgent = await admin.json("session", "create", "--no-wait", "--mem", "64m", "--priority", "80")
    assert urgent["priority"] == 80 and urgent["resource_group"] == "default"

    await client.create_resource_policy("one", max_pending_sessions=1, max_slots={"mem": "1g"})
    await client.update_user("bob", resource_policy="one")
    line = await bob.fails(1, "session", "create", "--no-wait", "--mem", "2g")
    assert line == ("error: this request can never start: user quota: 2.0 GiB memory is more than the limit of "
                    "1.0 GiB")
    line = await bob.fails(1, "session", "create", "--no-wait", "--mem", "64m")
    assert line.startswith("error: user quota: 1 of 1 pending sessions already queued")
