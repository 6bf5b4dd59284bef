"""The sessions that used resources in a window, read in one streamed query."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import AsyncIterator

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.slots import CPU, CUDA_DEVICE, CUDA_SHARES, MEM, ResourceSlot

from ..db.models import Session

STREAM_ROWS = 5000


@dataclass(frozen=True)
class UsedSession:
    """A session that ran: what it held (all its kernels), from when to when (``end`` None: still running)."""

    owner_id: str
    project_id: str | None
    resource_group: str
    start: datetime
    end: datetime | None
    cpu: float  # cores
    gpu: float  # GPUs: whole devices 1 each, shares their fraction
    mem: float  # bytes


async def used_sessions(db: AsyncSession, since: datetime, until: datetime,
                        resource_group: str | None = None) -> AsyncIterator[UsedSession]:
    """Sessions that started before ``until`` and had not ended by ``since``."""
    query = (
        select(Session.owner_id, Session.project_id, Session.resource_group, Session.started_at,
               Session.terminated_at, Session.requested_slots, Session.cluster_size)
        .where(Session.started_at.is_not(None), Session.started_at < until,
               or_(Session.terminated_at.is_(None), Session.terminated_at > since))
    )
    if resource_group is not None:
        query = query.where(Session.resource_group == resource_group)
    result = await db.stream(query.execution_options(yield_per=STREAM_ROWS))
    async for owner, project, group, started, ended, slots, size in result:
        request = ResourceSlot.from_json(slots)
        times = size or 1
        yield UsedSession(
            owner, project, group, started, ended,
            float(request[CPU]) * times,
            float(request[CUDA_DEVICE] + request[CUDA_SHARES]) * times,
            float(request[MEM]) * times,
        )
