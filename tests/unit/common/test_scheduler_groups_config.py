"""`[scheduler.groups.NAME]` in the manager's config: what it accepts and what it refuses, with the key named."""
from __future__ import annotations

from pathlib import Path

import pytest

from corral.common.errors import ConfigError
from corral.manager.config import load_manager_config

GROUPS = """
[scheduler.groups.gpu]
description = "the A100s"
queue_policy = "fair-share"
backfill = false
scorers = ["topology:2", {name = "dispersed", weight = 0.5}]
allowed_session_types = ["batch"]
allowed_projects = ["ml"]

[scheduler.groups.cpu]
"""


def test_groups_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "manager.toml"
    path.write_text(GROUPS)
    groups = load_manager_config(path).scheduler.groups
    gpu, cpu = groups["gpu"], groups["cpu"]
    assert (gpu.queue_policy, gpu.backfill, gpu.preemption) == ("fair-share", False, False)
    assert [(s.name, s.weight) for s in gpu.scorers] == [("topology", 2.0), ("dispersed", 0.5)]
    assert gpu.allowed_session_types == ["batch"] and gpu.allowed_projects == ["ml"] and gpu.allowed_users is None
    assert (cpu.queue_policy, cpu.backfill, [s.name for s in cpu.scorers]) == ("fifo", True, ["topology"])
    assert cpu.allowed_session_types == ["interactive", "batch"]


def test_groups_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_MANAGER_SCHEDULER__GROUPS", '{"lab": {"queue_policy": "lifo"}}')
    assert load_manager_config(None).scheduler.groups["lab"].queue_policy == "lifo"


@pytest.mark.parametrize("text, needle", [
    ('[scheduler.groups."bad name"]\n', "bad name"),
    ('[scheduler.groups.g]\nqueue_policy = "random"\n', "queue_policy"),
    ('[scheduler.groups.g]\nscorers = ["best"]\n', "unknown scorer 'best'"),
    ('[scheduler.groups.g]\nscorers = [{name = "topology", weight = 0}]\n', "weight"),
    ('[scheduler.groups.g]\nscorers = []\n', "scorers"),
    ('[scheduler.groups.g]\nallowed_session_types = ["notebook"]\n', "allowed_session_types"),
    ('[scheduler.groups.g]\ncolour = "red"\n', "colour"),
])
def test_bad_groups_are_refused(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "manager.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_manager_config(path)
    assert needle in str(info.value)
