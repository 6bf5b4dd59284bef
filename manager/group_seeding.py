"""At manager start: the resource groups the config declares (``[scheduler.groups.NAME]``), and
``default``, get a row when they have none. An existing row is never changed, so what an admin set
later through the API stays."""
from __future__ import annotations

import logging
from typing import Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.resource_groups import DEFAULT_GROUP

from .config import GroupConfig
from .db.models import Project, ResourceGroup, User
from .resource_groups import new_group

log = logging.getLogger(__name__)


async def seed_groups(sessionmaker: async_sessionmaker[AsyncSession], groups: Mapping[str, GroupConfig]) -> list[str]:
    """Create the missing groups; the names of those created."""
    wanted = {DEFAULT_GROUP: GroupConfig(), **groups}
    created: list[str] = []
    for name, spec in wanted.items():
        try:
            async with sessionmaker.begin() as db:
                if await db.get(ResourceGroup, name) is not None:
                    continue
                db.add(new_group(
                    name, description=spec.description, queue_policy=spec.queue_policy, backfill=spec.backfill,
                    preemption=spec.preemption, scorers=[s.model_dump() for s in spec.scorers],
                    allowed_session_types=list(dict.fromkeys(spec.allowed_session_types)),
                    allowed_users=await _known_ids(db, name, "user", spec.allowed_users),
                    allowed_projects=await _known_ids(db, name, "project", spec.allowed_projects),
                ))
        except IntegrityError:
            continue  # another manager starting at the same time created it
        created.append(name)
        log.info("resource group %r created from the configuration", name)
    return created


async def _known_ids(db: AsyncSession, group: str, kind: str, names: list[str] | None) -> list[str] | None:
    if names is None:
        return None
    column, id_column = (User.username, User.id) if kind == "user" else (Project.name, Project.id)
    found = dict((await db.execute(select(column, id_column).where(column.in_(names)))).all()) if names else {}
    unknown = [n for n in names if n not in found]
    if unknown:
        log.warning("resource group %r: no such %s %s; left out of its allowed list (an admin can add them later: "
                    "`corral admin group set %s`)", group, kind, ", ".join(unknown), group)
    return [found[n] for n in names if n in found]
