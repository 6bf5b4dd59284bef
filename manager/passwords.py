"""Users' passwords for the web UI's sign-in: argon2id hashes and the rules a new password must meet.

Hashing and checking cost tens of milliseconds of CPU on purpose, so they run in a worker
thread, never on the event loop.
"""
from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.errors import InvalidRequest, NotFound

from .db.models import User

MIN_LENGTH = 8
MAX_LENGTH = 1024

_hasher = PasswordHasher()  # argon2id, RFC 9106's low-memory profile
_dummy_hash: str | None = None


def password_problem(password: str, username: str) -> str | None:
    """Why ``password`` is not acceptable for ``username``; None when it is."""
    if len(password) < MIN_LENGTH:
        return f"the password must be at least {MIN_LENGTH} characters long"
    if len(password) > MAX_LENGTH:
        return f"the password must be at most {MAX_LENGTH} characters long"
    if password.casefold() == username.casefold():
        return "the password must not be the username"
    return None


def check_password_rules(password: str, username: str) -> None:
    """``InvalidRequest`` (400) naming the rule a new password breaks."""
    problem = password_problem(password, username)
    if problem is not None:
        raise InvalidRequest(problem)


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


def verify_password_sync(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no hash (a user without a password, or no such user) it is
    checked against a dummy hash, so the answer takes as long either way, and is False."""
    global _dummy_hash
    if not password_hash:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
        try:
            _hasher.verify(_dummy_hash, password)
        except VerificationError:
            pass
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(hash_password_sync, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password_sync, password_hash, password)


def generate_password() -> str:
    """A random password for a first admin (about 128 bits)."""
    return secrets.token_urlsafe(16)


async def set_user_password(sessionmaker: async_sessionmaker[AsyncSession], username: str, password: str) -> None:
    """Give an existing user a (checked) password; ``NotFound`` if there is no such user."""
    check_password_rules(password, username)
    password_hash = await hash_password(password)
    async with sessionmaker.begin() as db:
        user = await db.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"no user {username!r}")
        user.password_hash = password_hash


async def ensure_first_password(sessionmaker: async_sessionmaker[AsyncSession], username: str) -> str | None:
    """Give the user a random password if they have none; that password, or None when they had one
    (or there is no such user)."""
    async with sessionmaker() as db:
        if await db.scalar(select(User.password_hash).where(User.username == username)) is not None:
            return None
    password = generate_password()
    password_hash = await hash_password(password)
    async with sessionmaker.begin() as db:
        user = await db.scalar(select(User).where(User.username == username))
        if user is None or user.password_hash is not None:
            return None
        user.password_hash = password_hash
    return password
