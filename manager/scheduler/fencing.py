"""Leader fencing: only the manager holding the scheduler lease can commit a reservation.

The lease (etcd, or the single embedded manager) gives each leadership a
``term`` that only grows (the etcd revision that created the leader key).
On taking the lead the scheduler `claim`s: it raises the stored epoch to its
term. Every reservation starts with `check`, a guarded no-op write of that
row in the reservation's own transaction: it matches only while the epoch is
still ours, and it holds the row until commit, so a new leader's claim waits
for an old leader's last reservation and then makes every later one fail.
"""
from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.errors import CorralError

from ..clock import utcnow
from ..db.models import SchedulerLeadership

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"


class LostLeadership(CorralError):
    type_suffix = "lost-leadership"
    status = 409


class LeaderFence:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], holder: str) -> None:
        self._sessionmaker = sessionmaker
        self._holder = holder

    async def claim(self, term: int | None) -> int:
        """Take the epoch for this leadership; ``term`` None (single manager): one above the stored epoch."""
        async with self._sessionmaker() as db:
            # The write comes first, so the transaction holds the row (or the SQLite write lock) from here on.
            await db.execute(
                update(SchedulerLeadership).where(SchedulerLeadership.name == LEASE_NAME)
                .values(holder=SchedulerLeadership.holder)
            )
            row = await db.get(SchedulerLeadership, LEASE_NAME, populate_existing=True)
            stored = row.epoch if row is not None else 0
            epoch = stored + 1 if term is None else term
            if epoch <= stored:
                raise LostLeadership(f"a newer scheduler leader holds epoch {stored} (ours: {epoch})")
            if row is None:
                db.add(SchedulerLeadership(name=LEASE_NAME, epoch=epoch, holder=self._holder, since=utcnow()))
            else:
                row.epoch, row.holder, row.since = epoch, self._holder, utcnow()
            await db.commit()
        log.info("scheduler leadership claimed by %s with epoch %d", self._holder, epoch)
        return epoch

    async def check(self, db: AsyncSession, epoch: int) -> None:
        """Fail unless ``epoch`` is still the stored one; call first in a reservation's transaction."""
        result = await db.execute(
            update(SchedulerLeadership)
            .where(SchedulerLeadership.name == LEASE_NAME, SchedulerLeadership.epoch == epoch)
            .values(epoch=SchedulerLeadership.epoch)
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            current = await db.scalar(select(SchedulerLeadership.epoch).where(SchedulerLeadership.name == LEASE_NAME))
            raise LostLeadership(f"scheduler epoch is {current}, not ours ({epoch}): another manager leads")
