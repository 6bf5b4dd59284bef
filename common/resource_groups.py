"""The vocabulary of resource groups and resource policies (DESIGN §5), shared by the manager, its config
and the CLI: queue policy and scorer names, session types, name rules, and the ``NAME[:WEIGHT]`` scorer
form the CLI and the config accept."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import InvalidRequest

DEFAULT_GROUP = "default"
QUEUE_POLICIES = ("fifo", "lifo", "drf", "fair-share")
SCORER_NAMES = ("topology", "concentrated", "dispersed", "first-fit")
SESSION_TYPES = ("interactive", "batch")
DEFAULT_SCORERS: tuple[dict[str, Any], ...] = ({"name": "topology", "weight": 1.0},)

# Group names are what agents put in their config (``resource_group``) and sessions name.
GROUP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
POLICY_NAME_RE = GROUP_NAME_RE
NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

# Priorities: 0-100; users may ask for up to USER_MAX_PRIORITY, admins for up to MAX_PRIORITY.
MIN_PRIORITY = 0
DEFAULT_PRIORITY = 50
USER_MAX_PRIORITY = 50
MAX_PRIORITY = 100


def parse_scorer(text: str) -> dict[str, Any]:
    """``topology`` or ``topology:2`` → ``{"name": "topology", "weight": 2.0}``."""
    name, _, weight_text = text.strip().partition(":")
    name = name.strip()
    if name not in SCORER_NAMES:
        raise InvalidRequest(f"unknown scorer {name!r}; choose from {', '.join(SCORER_NAMES)}")
    weight = 1.0
    if weight_text.strip():
        try:
            amount = Decimal(weight_text.strip())
        except InvalidOperation:
            raise InvalidRequest(f"scorer {name}: weight {weight_text!r} is not a number") from None
        if not amount.is_finite() or amount <= 0:
            raise InvalidRequest(f"scorer {name}: the weight must be a number > 0, not {weight_text!r}")
        weight = float(amount)
    return {"name": name, "weight": weight}


def scorer_strings(value: Any) -> Any:
    """A pydantic "before" validator's work for scorer lists: ``NAME[:WEIGHT]`` strings become tables;
    a bad one is a ValueError with the readable reason."""
    if isinstance(value, list):
        try:
            return [parse_scorer(item) if isinstance(item, str) else item for item in value]
        except InvalidRequest as exc:
            raise ValueError(exc.detail) from None
    return value
