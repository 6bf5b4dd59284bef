"""Usage accounting through the API, SDK and CLI output: per day, per user and project, shares counted
fractionally, running sessions up to now, CSV export, and who may see what; SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import math
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from corral.client import InvalidRequest, NotFound, PermissionDenied
from corral.common.ids import new_id
from corral.manager.clock import utcnow
from corral.manager.db.models import Project, ProjectMember, Session, User
from corral.manager.usage.decayed import DecayedUsageCache, decayed_usage

from click.testing import CliRunner

from corral.client.cli.main import main as cli

from .cluster import LiveCluster

UTC = timezone.utc


@pytest.fixture
def live(manager_only: LiveCluster) -> LiveCluster:
    return manager_only


async def _ran(live: LiveCluster, username: str, start: datetime, end: datetime | None, slots: dict[str, str],
               project_id: str | None = None, group: str = "default", cluster_size: int = 1) -> None:
    async with live.manager.sessionmaker() as db:
        owner = await db.scalar(select(User.id).where(User.username == username))
        db.add(Session(
            id=new_id(), name=f"u{new_id()[:6]}", owner_id=owner, access_key="AK", type="batch",
            status="TERMINATED" if end else "RUNNING", image="x", command=["true"], env={}, requested_slots=slots,
            mounts=[], created_at=start, started_at=start, terminated_at=end, status_changed_at=end or start,
            project_id=project_id, resource_group=group, cluster_size=cluster_size,
        ))
        await db.commit()


async def test_usage_per_day_and_holder_with_csv_and_permissions(live: LiveCluster) -> None:
    admin = live.client()
    bob = live.client(*await live.add_user("bob"))
    await live.add_user("carol")
    async with live.manager.sessionmaker() as db:
        project = Project(id=new_id(), name="vision", created_at=utcnow())
        db.add(project)
        bob_id = await db.scalar(select(User.id).where(User.username == "bob"))
        db.add(ProjectMember(project_id=project.id, user_id=bob_id, role="member", created_at=utcnow()))
        await db.commit()
    day = datetime(2026, 5, 10, tzinfo=UTC)
    # 2 h across midnight: 1 h on each day, 4 cores, 0.25 of a GPU, 8 GiB.
    await _ran(live, "bob", day - timedelta(hours=1), day + timedelta(hours=1),
               {"cpu": "4", "mem": str(8 << 30), "cuda.shares": "0.25"}, project_id=project.id)
    await _ran(live, "carol", day + timedelta(hours=2), day + timedelta(hours=5), {"cpu": "1", "mem": "0",
                                                                                "cuda.device": "2"})
    report = await admin.usage(first_day="2026-05-09", last_day="2026-05-10")
    rows = {(str(r.day), r.holder): r for r in report.rows}
    assert set(rows) == {("2026-05-09", "bob"), ("2026-05-10", "bob"), ("2026-05-10", "carol")}
    assert rows[("2026-05-09", "bob")].cpu_core_hours == pytest.approx(4.0)
    assert rows[("2026-05-09", "bob")].gpu_hours == pytest.approx(0.25)
    assert rows[("2026-05-10", "bob")].mem_gib_hours == pytest.approx(8.0)
    assert rows[("2026-05-10", "carol")].gpu_hours == pytest.approx(6.0)
    assert report.totals.gpu_hours == pytest.approx(6.5)

    mine = await bob.usage(first_day="2026-05-09", last_day="2026-05-10")
    assert {r.holder for r in mine.rows} == {"bob"}
    by_project = await bob.usage(first_day="2026-05-09", last_day="2026-05-10", by="project")
    assert {(r.holder, round(r.gpu_hours, 2)) for r in by_project.rows} == {("vision", 0.25)}
    with pytest.raises(PermissionDenied):
        await bob.usage(user="carol")
    with pytest.raises(NotFound):
        await admin.usage(user="nobody")
    with pytest.raises(InvalidRequest, match="after"):
        await admin.usage(first_day="2026-05-11", last_day="2026-05-10")
    with pytest.raises(InvalidRequest, match="YYYY-MM-DD"):
        await admin.usage(first_day="yesterday")

    text = await admin.usage_csv(first_day="2026-05-10", last_day="2026-05-10")
    table = list(csv.DictReader(io.StringIO(text)))
    assert [(r["day"], r["user"], r["sessions"]) for r in table] == [("2026-05-10", "bob", "1"),
                                                                      ("2026-05-10", "carol", "1")]


async def test_a_running_session_counts_up_to_now(live: LiveCluster) -> None:
    admin = live.client()
    await live.add_user("dan")
    now = utcnow()
    await _ran(live, "dan", now - timedelta(minutes=30), None, {"cpu": "2", "mem": "0"})
    report = await admin.usage(user="dan")
    assert report.totals.cpu_core_hours == pytest.approx(1.0, rel=0.05)


async def test_groups_clusters_and_a_window_that_clips_sessions(live: LiveCluster) -> None:
    admin = live.client()
    await live.add_user("erin")
    day = datetime(2026, 6, 1, tzinfo=UTC)
    # 3 days long, 2 kernels of 1 core and one whole GPU each: only the middle day is asked for.
    await _ran(live, "erin", day - timedelta(days=1), day + timedelta(days=2), {"cpu": "1", "cuda.device": "1"},
               group="gpu", cluster_size=2)
    await _ran(live, "erin", day, day + timedelta(hours=6), {"cpu": "8"})  # in "default"
    await _ran(live, "erin", day + timedelta(days=5), day + timedelta(days=6), {"cpu": "8"})  # outside
    report = await admin.usage(first_day="2026-06-01", last_day="2026-06-01")
    by_group = {r.resource_group: r for r in report.rows}
    assert by_group["gpu"].cpu_core_hours == pytest.approx(48.0)
    assert by_group["gpu"].gpu_hours == pytest.approx(48.0)
    assert by_group["default"].cpu_core_hours == pytest.approx(48.0)
    assert report.totals.sessions == 2
    only_gpu = await admin.usage(first_day="2026-06-01", last_day="2026-06-01", group="gpu")
    assert [r.resource_group for r in only_gpu.rows] == ["gpu"]
    two_days = await admin.usage(first_day="2026-06-01", last_day="2026-06-02", group="gpu")
    assert [r.sessions for r in two_days.rows] == [1, 1]
    assert two_days.totals.sessions == 1  # one session, on two days
    with pytest.raises(InvalidRequest, match="by=project"):
        await admin.usage(project="vision")


async def test_decayed_usage_weighs_each_moment_by_its_age(live: LiveCluster) -> None:
    await live.add_user("fay")
    await live.add_user("gus")
    async with live.manager.sessionmaker() as db:
        project = Project(id=new_id(), name="nlp", created_at=utcnow())
        db.add(project)
        await db.commit()
        fay = await db.scalar(select(User.id).where(User.username == "fay"))
        gus = await db.scalar(select(User.id).where(User.username == "gus"))
    now = datetime(2026, 7, 1, 12, tzinfo=UTC)
    half = 3600.0
    # fay: 2 cores and half a GPU for the last hour, for project nlp; gus: 1 core for an hour that ended
    # one hour ago, and an old session beyond the look-back window, and one in another group.
    await _ran(live, "fay", now - timedelta(hours=1), None, {"cpu": "2", "cuda.shares": "0.5", "mem": str(1 << 30)},
               project_id=project.id)
    await _ran(live, "gus", now - timedelta(hours=2), now - timedelta(hours=1), {"cpu": "1"})
    await _ran(live, "gus", now - timedelta(hours=20), now - timedelta(hours=19), {"cpu": "100"})
    await _ran(live, "gus", now - timedelta(hours=1), now, {"cpu": "50"}, group="other")
    async with live.manager.sessionmaker() as db:
        usage = await decayed_usage(db, now, half, resource_group="default")
    last_hour = half / math.log(2) * 0.5  # ∫ 2^(-age/h) over the last half-life
    assert usage[("user", fay)].cpu_core_s == pytest.approx(2 * last_hour)
    assert usage[("user", fay)].gpu_s == pytest.approx(0.5 * last_hour)
    assert usage[("user", fay)].mem_byte_s == pytest.approx((1 << 30) * last_hour)
    assert usage[("project", project.id)] == usage[("user", fay)]
    assert usage[("user", gus)].cpu_core_s == pytest.approx(last_hour / 2)  # an hour older: half the weight
    assert set(usage) == {("user", fay), ("project", project.id), ("user", gus)}
    async with live.manager.sessionmaker() as db:
        everywhere = await decayed_usage(db, now, half)
    assert everywhere[("user", gus)].cpu_core_s == pytest.approx(last_hour / 2 + 50 * last_hour)


async def test_the_cache_gives_what_a_full_read_gives(live: LiveCluster) -> None:
    await live.add_user("ida")
    now = datetime(2026, 7, 2, 12, tzinfo=UTC)
    half = 3600.0
    await _ran(live, "ida", now - timedelta(hours=3), now - timedelta(hours=2), {"cpu": "4"})  # settled
    await _ran(live, "ida", now - timedelta(hours=1), now - timedelta(seconds=30), {"cpu": "2"})  # just ended
    await _ran(live, "ida", now - timedelta(minutes=10), None, {"cuda.device": "1"})  # running
    cache = DecayedUsageCache(half, refresh_s=3600)

    async def both(at: datetime) -> tuple[dict[tuple[str, str], object], dict[tuple[str, str], object]]:
        async with live.manager.sessionmaker() as db:
            return await cache(db, at), await decayed_usage(db, at, half)

    cached, full = await both(now)
    assert cached.keys() == full.keys()
    for key in full:
        assert vars(cached[key]) == pytest.approx(vars(full[key]))
    later = now + timedelta(minutes=20)
    await _ran(live, "ida", now + timedelta(minutes=5), now + timedelta(minutes=15), {"cpu": "8"})
    cached, full = await both(later)
    for key in full:
        assert vars(cached[key]) == pytest.approx(vars(full[key]))
    cached, full = await both(later + timedelta(hours=2))  # past refresh_s: read in full again
    for key in full:
        assert vars(cached[key]) == pytest.approx(vars(full[key]))


def _cli(live: LiveCluster, keys: tuple[str, str], *args: str) -> object:
    env = {"CORRAL_ENDPOINT": live.manager.url, "CORRAL_ACCESS_KEY": keys[0], "CORRAL_SECRET_KEY": keys[1],
           "CORRAL_CONFIG": str(live.root / "no-client.toml"), "COLUMNS": "200"}
    return CliRunner().invoke(cli, ["usage", *args], env=env, catch_exceptions=False)


async def test_the_usage_command(live: LiveCluster) -> None:
    keys = await live.add_user("hal")
    day = datetime(2026, 8, 3, tzinfo=UTC)
    await _ran(live, "hal", day + timedelta(hours=1), day + timedelta(hours=3), {"cpu": "2", "cuda.shares": "0.25"})
    await _ran(live, "hal", day + timedelta(days=1), day + timedelta(days=1, hours=1), {"cpu": "1"})

    table = await asyncio.to_thread(_cli, live, keys, "--from", "2026-08-03", "--to", "2026-08-04")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert any("2026-08-03" in line and "hal" in line and "4.00" in line and "0.50" in line for line in lines)
    total = [line for line in lines if line.strip().startswith("total")][0]
    assert total.split()[1:] == ["5.00", "0.50", "0.00", "2"]

    as_csv = await asyncio.to_thread(_cli, live, keys, "--from", "2026-08-03", "--to", "2026-08-04", "--csv")
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["day", "user", "resource_group", "cpu_core_hours", "gpu_hours", "mem_gib_hours", "sessions"]
    assert [r[:2] for r in rows[1:]] == [["2026-08-03", "hal"], ["2026-08-04", "hal"]]

    as_json = await asyncio.to_thread(_cli, live, keys, "--from", "2026-08-03", "--to", "2026-08-03", "--json")
    assert json.loads(as_json.stdout)["totals"]["cpu_core_hours"] == pytest.approx(4.0)

    empty = await asyncio.to_thread(_cli, live, keys, "--from", "2020-01-01", "--to", "2020-01-01")
    assert empty.exit_code == 0 and "no usage from 2020-01-01 to 2020-01-01" in empty.stderr
    bad = await asyncio.to_thread(_cli, live, keys, "--from", "2026-08-05", "--to", "2026-08-04")
    assert bad.exit_code != 0
    assert bad.stderr.strip().splitlines() == ["error: from (2026-08-05) is after to (2026-08-04)"]
    denied = await asyncio.to_thread(_cli, live, keys, "--user", "admin")
    assert denied.stderr.strip() == "error: only admins see other users' usage"
