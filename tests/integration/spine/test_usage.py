"""Usage accounting through the API, SDK and CLI output: per day, per user and project, shares counted
fractionally, running sessions up to now, CSV export, and who may see what; SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from corral.client import InvalidRequest, NotFound, PermissionDenied
from corral.common.ids import new_id
from corral.manager.clock import utcnow
from corral.manager.db.models import Project, ProjectMember, Session, User

from .cluster import LiveCluster

UTC = timezone.utc


@pytest.fixture
def live(manager_only: LiveCluster) -> LiveCluster:
    return manager_only


async def _ran(live: LiveCluster, username: str, start: datetime, end: datetime | None, slots: dict[str, str],
               project_id: str | None = None) -> None:
    async with live.manager.sessionmaker() as db:
        owner = await db.scalar(select(User.id).where(User.username == username))
        db.add(Session(
            id=new_id(), name=f"u{new_id()[:6]}", owner_id=owner, access_key="AK", type="batch",
            status="TERMINATED" if end else "RUNNING", image="x", command=["true"], env={}, requested_slots=slots,
            mounts=[], created_at=start, started_at=start, terminated_at=end, status_changed_at=end or start,
            project_id=project_id,
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
