"""Users' SSH public keys: register, list, remove, and keep every running session's sshd in step.

A change is pushed to the agents of the user's running sessions at once (best effort: a session
whose agent cannot be reached keeps its old list until it is recreated, and the failure is logged)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.errors import Conflict, CorralError, InvalidRequest, NotFound
from corral.common.ids import new_id
from corral.common.session_status import SessionStatus
from corral.common.ssh_keys import parse_public_key

from .clock import utcnow
from .db.models import Agent, Kernel, Session, SshKey

log = logging.getLogger(__name__)

MAX_KEYS_PER_USER = 100
MAX_NAME_CHARS = 100


class KeyPusher(Protocol):
    async def set_authorized_keys(self, address: str, kernel_id: str, keys: list[str]) -> None: ...


async def authorized_keys(db: AsyncSession, user_ids: Iterable[str]) -> dict[str, list[str]]:
    """Each user's public key lines, oldest first."""
    ids = sorted(set(user_ids))
    found: dict[str, list[str]] = {}
    if not ids:
        return found
    rows = await db.execute(
        select(SshKey.user_id, SshKey.public_key).where(SshKey.user_id.in_(ids)).order_by(SshKey.created_at)
    )
    for user_id, line in rows:
        found.setdefault(user_id, []).append(line)
    return found


class SshKeyService:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], agents: KeyPusher) -> None:
        self._sessionmaker = sessionmaker
        self._agents = agents

    async def list(self, user_id: str) -> list[SshKey]:
        async with self._sessionmaker() as db:
            return list((await db.scalars(
                select(SshKey).where(SshKey.user_id == user_id).order_by(SshKey.created_at)
            )).all())

    async def add(self, user_id: str, public_key: str, name: str = "") -> SshKey:
        key = parse_public_key(public_key)
        label = (name or key.comment or key.kind).strip()[:MAX_NAME_CHARS]
        async with self._sessionmaker() as db:
            count = len((await db.scalars(select(SshKey.id).where(SshKey.user_id == user_id))).all())
            if count >= MAX_KEYS_PER_USER:
                raise InvalidRequest(f"at most {MAX_KEYS_PER_USER} SSH keys per user; remove one first")
            row = SshKey(
                id=new_id(), user_id=user_id, name=label, public_key=key.line, fingerprint=key.fingerprint,
                created_at=utcnow(),
            )
            db.add(row)
            try:
                await db.commit()
            except IntegrityError:
                raise Conflict(f"this key is registered already ({key.fingerprint})", fingerprint=key.fingerprint) from None
        await self.push(user_id)
        return row

    async def remove(self, user_id: str, ref: str) -> SshKey:
        """By id, or by fingerprint."""
        async with self._sessionmaker() as db:
            row = await db.scalar(
                select(SshKey).where(SshKey.user_id == user_id, (SshKey.id == ref) | (SshKey.fingerprint == ref))
            )
            if row is None:
                raise NotFound(f"no SSH key {ref!r} (give its id or fingerprint; `corral ssh-key ls` lists them)")
            await db.execute(delete(SshKey).where(SshKey.id == row.id))
            await db.commit()
        await self.push(user_id)
        return row

    async def push(self, user_id: str) -> None:
        """Gives the user's running sessions their current key list."""
        async with self._sessionmaker() as db:
            keys = (await authorized_keys(db, [user_id])).get(user_id, [])
            targets = (await db.execute(
                select(Kernel.id, Agent.address)
                .join(Session, Session.id == Kernel.session_id)
                .join(Agent, Agent.id == Kernel.agent_id)
                .where(Session.owner_id == user_id, Kernel.status == SessionStatus.RUNNING)
            )).all()
        results = await asyncio.gather(
            *(self._agents.set_authorized_keys(address, kernel_id, keys) for kernel_id, address in targets),
            return_exceptions=True,
        )
        for (kernel_id, address), result in zip(targets, results):
            if isinstance(result, CorralError):
                log.warning("could not update the SSH keys of kernel %s at %s: %s", kernel_id, address, result.detail)
            elif isinstance(result, BaseException):
                log.warning("could not update the SSH keys of kernel %s at %s: %r", kernel_id, address, result)
