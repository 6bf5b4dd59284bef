"""Resource groups and resource policies through the API (SQLite and PostgreSQL, no agent or Docker): CRUD
and validation, who may see and use what, the users' and projects' scheduling settings, groups created for
agents and from the manager's config, and the checks a new session goes through (its group, project,
priority, type, and the policies' never-fits and queue limits)."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable

import pytest

from corral.common.errors import (
    Conflict,
    CorralError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    PolicyLimitReached,
    UnprocessableRequest,
    UnsatisfiableRequest,
)
from corral.manager.agent_registry import Heartbeat
from corral.manager.db.models import ResourceGroup

from .cluster import LiveCluster

SMALL = {"cpu": "1", "mem": "64m"}


async def refused(call: Awaitable[Any], error: type[CorralError], status: int, *needles: str) -> CorralError:
    with pytest.raises(error) as info:
        await call
    err = info.value
    assert getattr(err, "http_status", None) == status, (err, getattr(err, "http_status", None))
    for needle in needles:
        assert needle in err.detail, (needle, err.detail)
    return err


@pytest.fixture
def live(manager_only: LiveCluster) -> LiveCluster:
    return manager_only


async def _user(live: LiveCluster, name: str) -> Any:
    access, secret = await live.add_user(name)
    return live.client(access, secret)


async def test_groups_crud_validation_and_visibility(live: LiveCluster) -> None:
    admin = live.client()
    bob = await _user(live, "bob")
    carol = await _user(live, "carol")
    await admin.create_project("ml")
    await admin.add_project_member("ml", "carol")

    assert [g.name for g in await admin.list_resource_groups()] == ["default"]
    default = await admin.get_resource_group("default")
    assert default.queue_policy == "fifo" and default.backfill and not default.preemption
    assert [s.name for s in default.scorers] == ["topology"] and default.allowed_session_types == [
        "interactive", "batch"]
    assert default.raw["allowed_users"] is None and default.raw["agents"] == 0

    gpu = await admin.create_resource_group(
        "gpu", description="the A100s", queue_policy="fair-share", backfill=False, preemption=True,
        scorers=["topology:2", {"name": "concentrated", "weight": 0.5}], allowed_session_types=["batch"],
        allowed_users=["bob"], allowed_projects=["ml"],
    )
    assert (gpu.queue_policy, gpu.backfill, gpu.preemption) == ("fair-share", False, True)
    assert [(s.name, s.weight) for s in gpu.scorers] == [("topology", 2.0), ("concentrated", 0.5)]
    assert gpu.allowed_users == ["bob"] and gpu.allowed_projects == ["ml"]
    await refused(admin.create_resource_group("gpu"), Conflict, 409, "exists")
    await refused(bob.create_resource_group("mine"), PermissionDenied, 403)

    bad = [
        ({"queue_policy": "random"}, "queue_policy"),
        ({"scorers": ["best"]}, "unknown scorer 'best'"),
        ({"scorers": ["topology:0"]}, "weight must be a number > 0"),
        ({"scorers": [{"name": "topology", "weight": -1}]}, "weight"),
        ({"scorers": []}, "at least one scorer"),
        ({"allowed_session_types": ["notebook"]}, "allowed_session_types"),
        ({"allowed_session_types": []}, "at least one session type"),
        ({"backfill": "yes"}, "backfill"),
        ({"colour": "red"}, "colour"),
    ]
    for settings, needle in bad:
        await refused(admin.create_resource_group("g2", **settings), InvalidRequest, 400, needle)
    await refused(admin.create_resource_group("../x"), InvalidRequest, 400, "name")
    await refused(admin.create_resource_group("g2", allowed_users=["nobody", "bob"]), UnprocessableRequest, 422,
                  "no such user: nobody")
    await refused(admin.create_resource_group("g2", allowed_projects=["nope"]), UnprocessableRequest, 422,
                  "no such project: nope")

    # Users see the groups they may use: everyone's, theirs by name, their projects'.
    assert [g.name for g in await bob.list_resource_groups()] == ["default", "gpu"]
    assert "allowed_users" not in (await bob.get_resource_group("gpu")).raw
    changed = await admin.update_resource_group("gpu", allowed_users=[], queue_policy="drf")
    assert changed.allowed_users == [] and changed.allowed_projects == ["ml"] and changed.queue_policy == "drf"
    assert changed.description == "the A100s" and not changed.backfill  # the rest stays
    assert [g.name for g in await bob.list_resource_groups()] == ["default"]
    await refused(bob.get_resource_group("gpu"), NotFound, 404)
    assert [g.name for g in await carol.list_resource_groups()] == ["default", "gpu"]
    await refused(admin.update_resource_group("gpu", scorers=None), InvalidRequest, 400, "null")
    await refused(admin.update_resource_group("nope", backfill=True), NotFound, 404)
    await refused(bob.update_resource_group("gpu", backfill=True), PermissionDenied, 403)
    opened = await admin.update_resource_group("gpu", allowed_users=None, allowed_projects=None)
    assert opened.allowed_users is None and opened.allowed_projects is None
    assert [g.name for g in await bob.list_resource_groups()] == ["default", "gpu"]

    await refused(admin.delete_resource_group("default"), Conflict, 409, "cannot be deleted")
    await refused(bob.delete_resource_group("gpu"), PermissionDenied, 403)
    await admin.update_user("bob", default_group="gpu")
    await refused(admin.delete_resource_group("gpu"), Conflict, 409, "default group of 1 user (bob)")
    await admin.update_user("bob", default_group=None)
    gone = await admin.delete_resource_group("gpu")
    assert gone.name == "gpu"
    await refused(admin.get_resource_group("gpu"), NotFound, 404)
    await refused(admin.delete_resource_group("gpu"), NotFound, 404)


async def test_a_group_in_use_cannot_be_deleted(live: LiveCluster) -> None:
    admin = live.client()
    await admin.create_resource_group("queue")
    session = await admin.create_session(resource_group="queue", resources=SMALL)  # no agent: stays PENDING
    await refused(admin.delete_resource_group("queue"), Conflict, 409, "1 active or queued session")
    await admin.destroy_session(session.id)
    await admin.delete_resource_group("queue")


async def test_agents_create_their_group_and_are_counted(live: LiveCluster) -> None:
    admin = live.client()
    registry = live.manager.core.registry
    capacity = {"cpu_cores": [0, 1], "mem": 2 << 30}
    await registry.heartbeat(Heartbeat(agent_id="ag1", address="http://127.0.0.1:1", resource_group="lab",
                                       capacity=capacity))
    lab = await admin.get_resource_group("lab")
    assert lab.queue_policy == "fifo" and lab.backfill and [s.name for s in lab.scorers] == ["topology"]
    assert lab.allowed_session_types == ["interactive", "batch"] and lab.allowed_users is None
    assert lab.raw["agents"] == 1 and lab.raw["alive_agents"] == 1
    await refused(admin.delete_resource_group("lab"), Conflict, 409, "1 agent (ag1)")
    # An admin's changes survive the agent's next heartbeats.
    await admin.update_resource_group("lab", queue_policy="lifo")
    await registry.heartbeat(Heartbeat(agent_id="ag1", address="http://127.0.0.1:1", resource_group="lab",
                                       capacity=capacity))
    assert (await admin.get_resource_group("lab")).queue_policy == "lifo"


async def test_config_declares_groups_without_overwriting_them(db_url: str) -> None:
    cluster = LiveCluster(db_url=db_url)
    groups = {"batch": {"queue_policy": "drf", "backfill": False, "scorers": ["dispersed:3"],
                        "allowed_session_types": ["batch"], "allowed_users": ["admin", "ghost"]}}
    try:
        await cluster.start_manager(scheduler={"interval_s": 0.5, "groups": groups})
        admin = cluster.client()
        batch = await admin.get_resource_group("batch")
        assert (batch.queue_policy, batch.backfill, batch.allowed_session_types) == ("drf", False, ["batch"])
        assert [(s.name, s.weight) for s in batch.scorers] == [("dispersed", 3.0)]
        assert batch.allowed_users == ["admin"]  # "ghost" does not exist: left out
        await admin.update_resource_group("batch", queue_policy="fifo")
        await cluster.manager.stop()
        cluster.managers.clear()
        await cluster.start_manager(scheduler={"interval_s": 0.5, "groups": groups})
        assert (await cluster.client().get_resource_group("batch")).queue_policy == "fifo"
        async with cluster.manager.sessionmaker() as db:
            assert (await db.get(ResourceGroup, "default")) is not None
    finally:
        await cluster.stop()


async def test_policies_crud_and_validation(live: LiveCluster) -> None:
    admin = live.client()
    bob = await _user(live, "bob")
    made = await admin.create_resource_policy(
        "small", max_concurrent_sessions=2, max_pending_sessions=3,
        max_slots={"cpu": 8, "mem": "64g", "cuda.device": 2, "cuda.shares": "1.5"},
        max_cluster_size=2, max_session_lifetime_s=86400, idle_timeout_s=3600,
    )
    assert made.max_slots == {"cpu": "8", "cuda.device": "2", "cuda.shares": "1.5", "mem": str(64 << 30)}
    assert (made.max_concurrent_sessions, made.max_pending_sessions, made.max_cluster_size) == (2, 3, 2)
    assert made.max_session_lifetime_s == 86400 and made.idle_timeout_s == 3600 and made.users == []
    await refused(admin.create_resource_policy("small"), Conflict, 409)
    await refused(bob.create_resource_policy("mine"), PermissionDenied, 403)
    await refused(bob.list_resource_policies(), PermissionDenied, 403)
    bad = [
        ({"max_slots": {"gpu": 1}}, "unknown resource slot 'gpu'"),
        ({"max_slots": {"mem": "lots"}}, "not a size"),
        ({"max_slots": {"cpu": -1}}, "must not be negative"),
        ({"max_slots": {"cuda.device": "1.5"}}, "whole number of GPUs"),
        ({"max_slots": {"cuda.shares": "0.001"}}, "multiple of 0.01"),
        ({"max_concurrent_sessions": -1}, "max_concurrent_sessions"),
        ({"max_concurrent_sessions": "2"}, "max_concurrent_sessions"),
        ({"max_cluster_size": 0}, "max_cluster_size"),
        ({"idle_timeout_s": 0}, "idle_timeout_s"),
        ({"max_sessions": 1}, "max_sessions"),
    ]
    for limits, needle in bad:
        await refused(admin.create_resource_policy("p2", **limits), InvalidRequest, 400, needle)

    changed = await admin.update_resource_policy("small", max_slots={"mem": None, "cpu": "16"}, idle_timeout_s=None)
    assert changed.max_slots == {"cpu": "16", "cuda.device": "2", "cuda.shares": "1.5"}
    assert changed.idle_timeout_s is None and changed.max_concurrent_sessions == 2
    await refused(admin.update_resource_policy("nope", max_cluster_size=1), NotFound, 404)
    assert [p.name for p in await admin.list_resource_policies()] == ["small"]

    await admin.create_project("ml")
    await admin.update_user("bob", resource_policy="small")
    await admin.update_project("ml", resource_policy="small")
    used = await admin.get_resource_policy("small")
    assert used.users == ["bob"] and used.projects == ["ml"]
    await refused(admin.delete_resource_policy("small"), Conflict, 409, "user bob", "project ml")
    await admin.update_user("bob", resource_policy=None)
    await admin.update_project("ml", resource_policy=None)
    assert (await admin.delete_resource_policy("small")).name == "small"
    await refused(admin.get_resource_policy("small"), NotFound, 404)


async def test_user_and_project_scheduling_settings(live: LiveCluster) -> None:
    admin = live.client()
    bob = await _user(live, "bob")
    await admin.create_resource_policy("p")
    await admin.create_resource_group("gpu")
    await admin.create_resource_group("closed", allowed_users=[])
    await admin.create_project("ml")
    await admin.create_project("other")
    await admin.add_project_member("ml", "bob")

    user = await admin.update_user("bob", resource_policy="p", default_group="gpu", default_project="ml",
                                   fair_share=2.5)
    assert (user["resource_policy"], user["default_group"], user["default_project"], user["fair_share"]) == (
        "p", "gpu", "ml", 2.5)
    listed = {u["username"]: u for u in await admin.list_users()}
    assert listed["bob"]["default_project"] == "ml" and listed["admin"]["fair_share"] == 1.0
    for changes, needle in (({"resource_policy": "nope"}, "no resource policy 'nope'"),
                            ({"default_group": "nope"}, "no resource group 'nope'"),
                            ({"default_project": "nope"}, "no project 'nope'"),
                            ({"default_project": "other"}, "not a member of project other"),
                            ({"default_group": "closed"}, "bob may not use resource group 'closed'")):
        await refused(admin.update_user("bob", **changes), UnprocessableRequest, 422, needle)
    for changes in ({"fair_share": 0}, {"fair_share": -1}, {"fair_share": None}, {"fair_share": "2"}):
        await refused(admin.update_user("bob", **changes), InvalidRequest, 400, "fair_share")
    await refused(bob.update_user("bob", fair_share=3), PermissionDenied, 403)
    cleared = await admin.update_user("bob", resource_policy=None, default_group=None, default_project=None)
    assert (cleared["resource_policy"], cleared["default_group"], cleared["default_project"]) == (None, None, None)
    assert cleared["fair_share"] == 2.5

    project = await admin.update_project("ml", resource_policy="p", fair_share=3, description="models")
    assert (project.resource_policy, project.fair_share, project.description) == ("p", 3.0, "models")
    await refused(admin.update_project("ml", resource_policy="nope"), UnprocessableRequest, 422, "nope")
    await refused(admin.update_project("ml", fair_share=0), InvalidRequest, 400, "fair_share")
    await refused(admin.update_project("nope", fair_share=1), NotFound, 404)
    await refused(bob.update_project("ml", fair_share=1), PermissionDenied, 403)
    assert (await bob.get_project("ml")).resource_policy == "p"


async def test_session_creation_checks(live: LiveCluster) -> None:
    admin = live.client()
    bob = await _user(live, "bob")
    await _user(live, "carol")
    await admin.create_project("ml")
    await admin.add_project_member("ml", "bob")
    await admin.create_project("vision")
    await admin.create_resource_group("gpu", allowed_projects=["ml"], allowed_session_types=["batch"])
    await admin.create_resource_group("carols", allowed_users=["carol"])

    # Defaults: the "default" group, no project, priority 50.
    plain = await bob.create_session(resources=SMALL)
    assert (plain.resource_group, plain.project, plain.priority) == ("default", None, 50)
    # The user's default group and project are used when the request names none.
    await admin.create_resource_group("lab")
    await admin.update_user("bob", default_group="lab", default_project="ml")
    defaulted = await bob.create_session(resources=SMALL, priority=10)
    assert (defaulted.resource_group, defaulted.project, defaulted.priority) == ("lab", "ml", 10)
    listed = {s.id: s for s in (await bob.list_sessions()).items}
    assert (listed[defaulted.id].project, listed[defaulted.id].priority) == ("ml", 10)

    await refused(bob.create_session(resource_group="nope"), NotFound, 404, "no resource group 'nope'",
                  "you may use: default, gpu, lab")
    await refused(bob.create_session(resource_group="carols"), PermissionDenied, 403, "carols")
    # The ml group takes ml's sessions (bob's default project is ml), batch ones only.
    await refused(bob.create_session(resource_group="gpu", resources=SMALL), UnprocessableRequest, 422,
                  "does not take interactive sessions")
    batch = await bob.create_session(resource_group="gpu", type="batch", command="true", resources=SMALL)
    assert (batch.resource_group, batch.project) == ("gpu", "ml")
    await admin.update_user("bob", default_project=None)
    await refused(bob.create_session(resource_group="gpu", type="batch", command="true"), PermissionDenied, 403,
                  "unless the session counts against project ml")
    await refused(bob.create_session(project="vision"), PermissionDenied, 403, "not a member of project vision")
    await refused(bob.create_session(project="nope"), NotFound, 404, "no project 'nope'")
    assert (await bob.create_session(project="ml", resources=SMALL)).project == "ml"
    # Admins use any group and project, and may give priorities above 50.
    await refused(bob.create_session(priority=51), PermissionDenied, 403, "priority 51 is for admins")
    await refused(bob.create_session(priority=101), InvalidRequest, 400, "priority")
    urgent = await admin.create_session(resource_group="carols", project="vision", priority=90, resources=SMALL)
    assert (urgent.resource_group, urgent.project, urgent.priority) == ("carols", "vision", 90)
    info = await admin.get_session(urgent.id)
    assert (info.project, info.priority) == ("vision", 90)


async def test_policies_refuse_what_never_fits_and_cap_the_queue(live: LiveCluster) -> None:
    admin = live.client()
    bob = await _user(live, "bob")
    await admin.create_project("ml")
    await admin.add_project_member("ml", "bob")
    await admin.create_resource_policy("bob-quota", max_slots={"mem": "1g", "cpu": 2}, max_pending_sessions=2)
    await admin.create_resource_policy("ml-quota", max_slots={"cuda.shares": "0.5"}, max_pending_sessions=1)
    await admin.update_user("bob", resource_policy="bob-quota")

    err = await refused(bob.create_session(resources={"cpu": "1", "mem": "2g"}), UnsatisfiableRequest, 422,
                        "user quota", "2.0 GiB memory is more than the limit of 1.0 GiB")
    assert err.extra["policy"] == "bob-quota" and err.extra["holder"] == "user"
    await refused(bob.create_session(resources={"cpu": "4", "mem": "64m"}), UnsatisfiableRequest, 422,
                  "4 CPU cores is more than the limit of 2")

    first = await bob.create_session(resources=SMALL)
    second = await bob.create_session(resources=SMALL)
    err = await refused(bob.create_session(resources=SMALL), PolicyLimitReached, 409,
                        "user quota: 2 of 2 pending sessions already queued")
    assert isinstance(err, Conflict) and err.extra["policy"] == "bob-quota"
    await bob.destroy_session(first.id)
    third = await bob.create_session(resources=SMALL)

    # A project's policy holds the sessions that count against it.
    await admin.update_project("ml", resource_policy="ml-quota")
    await refused(bob.create_session(project="ml", resources={**SMALL, "cuda.shares": "0.75"}),
                  UnsatisfiableRequest, 422, "project ml quota", "0.75 GPU shares is more than the limit of 0.5")
    for done in (second, third):
        await bob.destroy_session(done.id)
    await bob.create_session(project="ml", resources=SMALL)
    await refused(bob.create_session(project="ml", resources=SMALL), PolicyLimitReached, 409,
                  "project ml quota: 1 of 1 pending")

    # No sessions at all, and too big a cluster.
    await admin.create_resource_policy("none", max_concurrent_sessions=0)
    await admin.update_user("bob", resource_policy="none")
    await refused(bob.create_session(resources=SMALL), UnsatisfiableRequest, 422, "no sessions are allowed")


async def test_the_queue_limit_holds_under_concurrent_creations(live: LiveCluster) -> None:
    admin = live.client()
    bob = await _user(live, "bob")
    await admin.create_resource_policy("two", max_pending_sessions=2)
    await admin.update_user("bob", resource_policy="two")
    results = await asyncio.gather(*(bob.create_session(resources=SMALL) for _ in range(6)), return_exceptions=True)
    made = [r for r in results if not isinstance(r, BaseException)]
    assert len(made) == 2, results
    assert all(isinstance(r, PolicyLimitReached) for r in results if isinstance(r, BaseException)), results
