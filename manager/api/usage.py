"""``GET /api/v1/usage``: resource-hours per day and per user or project, as JSON or CSV."""
from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select

from corral.common import api_models as api
from corral.common.errors import InvalidRequest, NotFound, PermissionDenied

from ..clock import utcnow
from ..db.models import Project, ProjectMember, User
from ..usage.report import UsageRow, usage_report
from .context_access import ctx_of, user_of
from .responses import json_response

MAX_DAYS = 366
CSV_COLUMNS = ("day", "holder", "resource_group", "cpu_core_hours", "gpu_hours", "mem_gib_hours", "sessions")


def _day(request: web.Request, name: str, default: date) -> date:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be a day as YYYY-MM-DD, not {text!r}") from None


async def usage(request: web.Request) -> web.StreamResponse:
    user = user_of(request)
    today = utcnow().date()
    last = _day(request, "to", today)
    first = _day(request, "from", last - timedelta(days=6))
    if first > last:
        raise InvalidRequest(f"from ({first}) is after to ({last})")
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidRequest(f"at most {MAX_DAYS} days at once")
    by = request.query.get("by", "user")
    if by not in ("user", "project"):
        raise InvalidRequest("by must be user or project")
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise InvalidRequest("format must be json or csv")
    group = request.query.get("group") or None
    async with ctx_of(request).sessionmaker() as db:
        holders = await _holders(db, user, by, request.query.get("user"), request.query.get("project"))
        report = await usage_report(db, first, last, utcnow(), by=by, resource_group=group, holder_ids=holders)
    rows = report.rows
    if fmt == "csv":
        return _csv(rows, first, last, by)
    return json_response(api.UsageReport, {
        "first_day": first, "last_day": last, "by": by, "rows": [_row(r) for r in rows],
        "totals": {
            "cpu_core_hours": round(sum(r.cpu_core_hours for r in rows), 6),
            "gpu_hours": round(sum(r.gpu_hours for r in rows), 6),
            "mem_gib_hours": round(sum(r.mem_gib_hours for r in rows), 6),
            "sessions": report.sessions,
        },
    })


async def _holders(db: Any, user: Any, by: str, username: str | None, project: str | None) -> set[str] | None:
    """Whose usage the caller may see (None: everyone's, for admins), narrowed by ``user``/``project``."""
    if username:
        if by != "user":
            raise InvalidRequest("user= goes with by=user")
        user_id = await db.scalar(select(User.id).where(User.username == username))
        if user_id is None:
            raise NotFound(f"no user {username!r}")
        if not user.is_admin and user_id != user.user_id:
            raise PermissionDenied("only admins see other users' usage")
        return {user_id}
    if project:
        if by != "project":
            raise InvalidRequest("project= goes with by=project")
        project_id = await db.scalar(select(Project.id).where(Project.name == project))
        if project_id is None:
            raise NotFound(f"no project {project!r}")
        if not user.is_admin and not await db.scalar(select(ProjectMember.user_id).where(
                ProjectMember.project_id == project_id, ProjectMember.user_id == user.user_id)):
            raise PermissionDenied(f"you are not a member of project {project!r}")
        return {project_id}
    if user.is_admin:
        return None
    if by == "user":
        return {user.user_id}
    return set((await db.scalars(select(ProjectMember.project_id).where(ProjectMember.user_id == user.user_id))).all())


def _row(row: UsageRow) -> dict[str, Any]:
    return {"day": row.day, "holder": row.name, "resource_group": row.resource_group,
            "cpu_core_hours": round(row.cpu_core_hours, 6), "gpu_hours": round(row.gpu_hours, 6),
            "mem_gib_hours": round(row.mem_gib_hours, 6), "sessions": row.sessions}


def _csv(rows: list[UsageRow], first: date, last: date, by: str) -> web.Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c if c != "holder" else by for c in CSV_COLUMNS])
    for row in rows:
        data = _row(row)
        writer.writerow([data["day"].isoformat(), *(data[c] for c in CSV_COLUMNS[1:])])
    return web.Response(
        text=out.getvalue(), content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="corral-usage-{by}-{first}-{last}.csv"'},
    )
