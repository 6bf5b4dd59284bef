"""First-run set-up: the admin user and keypair named in the config."""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.ids import new_id

from .db.models import Keypair, User
from .clock import utcnow

log = logging.getLogger(__name__)


async def ensure_user(
    sessionmaker: async_sessionmaker[AsyncSession], username: str, role: str, access_key: str, secret_key: str
) -> None:
    """Create the user and keypair if missing; an existing keypair keeps its secret."""
    async with sessionmaker() as db:
        user = await db.scalar(select(User).where(User.username == username))
        if user is None:
            user = User(id=new_id(), username=username, role=role, created_at=utcnow())
            db.add(user)
            log.info("created %s user %r", role, username)
        keypair = await db.get(Keypair, access_key)
        if keypair is None:
            db.add(Keypair(access_key=access_key, secret_key=secret_key, user_id=user.id, is_active=True, created_at=utcnow()))
        await db.commit()
