"""`corral admin project …` and `corral project …` against a real `corral up`: an admin
makes a project, a manager manages its members, members share a project vfolder, a
removed member loses it; exit statuses as documented."""
from __future__ import annotations

import json
import subprocess
from typing import Callable

import pytest

from tests.e2e.test_cli_end_to_end import CORRAL, CorralUp, base_image, up  # noqa: F401 - fixtures

Corral = Callable[..., subprocess.CompletedProcess[str]]


def as_user(up: CorralUp, username: str) -> Corral:  # noqa: F811
    made = up.corral("admin", "user", "create", username, "--json")
    assert made.returncode == 0, made.stderr
    keys = json.loads(made.stdout)
    env = {**up.env, "CORRAL_ACCESS_KEY": keys["access_key"], "CORRAL_SECRET_KEY": keys["secret_key"]}

    def corral(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CORRAL, *args], env=env, capture_output=True, text=True, timeout=120)

    return corral


@pytest.mark.docker
@pytest.mark.slow
def test_project_commands(up: CorralUp) -> None:  # noqa: F811
    bob, carol = as_user(up, "bob"), as_user(up, "carol")
    made = up.corral("admin", "project", "create", "ml", "--description", "the ML team", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["description"] == "the ML team"
    again = up.corral("admin", "project", "create", "ml")
    assert again.returncode == 1 and again.stderr.startswith("error:") and "exists" in again.stderr
    assert bob("admin", "project", "create", "mine").returncode == 3

    assert up.corral("project", "add-member", "ml", "carol", "--manager").returncode == 0
    assert up.corral("project", "add-member", "nope", "bob").returncode == 4
    assert up.corral("project", "add-member", "ml", "nobody").returncode == 4
    assert bob("project", "info", "ml").returncode == 4  # not a member yet: no such project for bob
    added = carol("project", "add-member", "ml", "bob")
    assert added.returncode == 0 and "bob is now a member of project ml" in added.stdout
    assert carol("project", "add-member", "ml", "bob").returncode == 1  # 409: already a member
    assert bob("project", "add-member", "ml", "carol").returncode == 3  # members do not manage members

    listed = json.loads(bob("project", "ls", "--json").stdout)
    assert [(p["name"], p["role"], p["member_count"]) for p in listed] == [("ml", "member", 2)]
    info = carol("project", "info", "ml")
    assert info.returncode == 0 and "carol (manager), bob (member)" in info.stdout

    created = bob("vfolder", "create", "shared", "--project", "ml", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["project"] == "ml"
    seen = json.loads(carol("vfolder", "ls", "--json").stdout)
    assert [(v["name"], v["project"], v["is_owner"]) for v in seen] == [("shared", "ml", True)]
    assert "project ml" in carol("vfolder", "ls").stdout
    assert bob("vfolder", "rm", "shared").returncode == 3  # managers delete, members use

    removed = carol("project", "remove-member", "ml", "bob")
    assert removed.returncode == 0, removed.stderr
    assert bob("vfolder", "info", "shared").returncode == 4
    assert bob("project", "ls", "--json").stdout.strip() == "[]"
    assert [p["name"] for p in json.loads(up.corral("admin", "project", "ls", "--json").stdout)] == ["ml"]
