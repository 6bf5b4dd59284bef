"""Identifiers and credentials."""
from __future__ import annotations

import secrets
import uuid


def new_id() -> str:
    return str(uuid.uuid4())


def short_id(full_id: str) -> str:
    return full_id.replace("-", "")[:8]


def new_access_key() -> str:
    return "AK" + secrets.token_hex(9).upper()


def new_secret_key() -> str:
    return secrets.token_urlsafe(30)
