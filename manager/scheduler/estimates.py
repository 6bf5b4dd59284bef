"""When running sessions are expected to end: what the head-of-queue reservation is planned from.

A session ends at the latest at its lifetime limit (the strictest of its owner's and project's
policies, enforced by the lifecycle sweep), so that is used when there is one. Otherwise the owner's
mean length over their last finished sessions (at most 50), and without any history ``default_s``.
An estimate that has already passed is taken as "a moment from now".
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Session
from ..quotas import held_policies_many, strictest
from ..states import TERMINAL

HISTORY = 50
SOON_S = 60.0


async def lifetime_bounds(db: AsyncSession, pairs: Iterable[tuple[str, str | None]]) -> dict[tuple[str, str | None], float]:
    """The strictest lifetime limit (seconds) per (owner, project) that has one."""
    held = await held_policies_many(db, pairs)
    bounds = {}
    for pair, policies in held.items():
        limit = strictest(policies, "max_session_lifetime_s")
        if limit is not None:
            bounds[pair] = limit
    return bounds


async def mean_lengths(db: AsyncSession, owners: Iterable[str]) -> dict[str, float]:
    """Each owner's mean session length (seconds) over their last finished sessions."""
    owner_ids = list(set(owners))
    if not owner_ids:
        return {}
    rows = await db.execute(
        select(Session.owner_id, Session.started_at, Session.terminated_at)
        .where(Session.owner_id.in_(owner_ids), Session.status.in_(list(TERMINAL)),
               Session.started_at.is_not(None), Session.terminated_at.is_not(None))
        .order_by(Session.terminated_at.desc())
        .limit(HISTORY * len(owner_ids))
    )
    lengths: dict[str, list[float]] = defaultdict(list)
    for owner, started, ended in rows:
        if len(lengths[owner]) < HISTORY:
            lengths[owner].append(max(0.0, (ended - started).total_seconds()))
    return {owner: sum(values) / len(values) for owner, values in lengths.items() if values}


async def expected_ends(
    db: AsyncSession, session_ids: Iterable[str], now: datetime, default_s: float, starting_now: Iterable[str] = (),
) -> dict[str, float]:
    """Expected end (epoch seconds) of each of these active sessions, and of ``starting_now`` (placed by
    the pass under way: they count from now)."""
    fresh = set(starting_now)
    ids = list(set(session_ids) | fresh)
    if not ids:
        return {}
    rows = (await db.execute(
        select(Session.id, Session.owner_id, Session.project_id, Session.started_at, Session.scheduled_at,
               Session.created_at).where(Session.id.in_(ids))
    )).all()
    bounds = await lifetime_bounds(db, {(owner, project) for _, owner, project, *_ in rows})
    means = await mean_lengths(db, {owner for _, owner, *_ in rows})
    now_ts = now.timestamp()
    ends = {}
    for sid, owner, project, started, scheduled, created in rows:
        begin = now_ts if sid in fresh else (started or scheduled or created).timestamp()
        length = bounds.get((owner, project))
        if length is None:
            length = means.get(owner, default_s)
        ends[sid] = max(begin + length, now_ts + SOON_S)
    return ends
