"""The sessions that used resources in a window, read in one streamed query."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, AsyncIterator, Mapping

from sqlalchemy import Text, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from corral.common.slots import CPU, CUDA_DEVICE, CUDA_SHARES, MEM

from ..db.models import Session

STREAM_ROWS = 5000


@dataclass(frozen=True)
class UsedSession:
    """A session that ran: what it held (all its kernels), from when to when (``end`` None: still running)."""

    id: str
    owner_id: str
    project_id: str | None
    resource_group: str
    start: datetime
    end: datetime | None
    cpu: float  # cores
    gpu: float  # GPUs: whole devices 1 each, shares their fraction
    mem: float  # bytes


def _amount(slots: Mapping[str, Any], name: str) -> float:
    """One slot of a stored request (Decimal strings); a missing or unreadable one counts nothing."""
    value = slots.get(name)
    if value is None or isinstance(value, bool):
        return 0.0
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


def _per_kernel(text: str | None) -> tuple[float, float, float]:
    """(cores, GPUs, bytes) of a stored per-kernel request."""
    try:
        slots = json.loads(text) if text else {}
    except ValueError:
        slots = {}
    if not isinstance(slots, Mapping):
        slots = {}
    return _amount(slots, CPU), _amount(slots, CUDA_DEVICE) + _amount(slots, CUDA_SHARES), _amount(slots, MEM)


async def used_sessions(db: AsyncSession, since: datetime, until: datetime,
                        resource_group: str | None = None) -> AsyncIterator[UsedSession]:
    """Sessions that started before ``until`` and had not ended by ``since`` (running ones too).

    Each kernel holds the session's per-kernel request, so a session holds it ``cluster_size`` times;
    a whole GPU (``cuda.device``) counts 1 and a share (``cuda.shares``) its fraction.

    One query, streamed in chunks of ``STREAM_ROWS``; requests are read as text and each distinct one is
    parsed once (most sessions ask for one of a few shapes).
    """
    sessions = Session.__table__.c
    query = (
        select(sessions.id, sessions.owner_id, sessions.project_id, sessions.resource_group, sessions.started_at,
               sessions.terminated_at, cast(sessions.requested_slots, Text), sessions.cluster_size)
        .where(sessions.started_at.is_not(None), sessions.started_at < until,
               or_(sessions.terminated_at.is_(None), sessions.terminated_at > since))
    )
    if resource_group is not None:
        query = query.where(sessions.resource_group == resource_group)
    parsed: dict[str | None, tuple[float, float, float]] = {}
    result = await db.stream(query.execution_options(yield_per=STREAM_ROWS))
    async for rows in result.partitions():
        for sid, owner, project, group, started, ended, slots, size in rows:
            amounts = parsed.get(slots)
            if amounts is None:
                amounts = parsed[slots] = _per_kernel(slots)
                if len(parsed) > 10_000:  # every request different: stop remembering
                    parsed.clear()
            times = size or 1
            cpu, gpu, mem = amounts
            yield UsedSession(sid, owner, project, group, started, ended, cpu * times, gpu * times, mem * times)
