"""Resource policies (DESIGN §5): the limits a user or a project is held to, and their administration (admins
only). Independent of HTTP; ``quotas`` reads them when sessions are created and scheduled.

``max_slots`` is stored as exact strings (``cpu`` cores, ``mem`` bytes, ``cuda.device`` whole GPUs,
``cuda.shares`` GPU shares), the way resource slots travel everywhere else.
"""
from __future__ import annotations

import logging
from decimal import Decimal
from typing import Annotated, Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common import api_models as api
from corral.common.errors import Conflict, InvalidRequest, NotFound
from corral.common.resource_groups import NAME_RULE, POLICY_NAME_RE
from corral.common.slots import CUDA_DEVICE, KNOWN_SLOTS, MEM, QUANTUM, parse_size, to_decimal

from .auth import AuthUser, require_admin
from .clock import utcnow
from .db.models import Project, ResourcePolicy, User

log = logging.getLogger(__name__)

Amount = StrictStr | StrictInt | StrictFloat
Count = Annotated[StrictInt, Field(ge=0)]
Seconds = Annotated[StrictFloat | StrictInt, Field(gt=0, allow_inf_nan=False)]
SLOTS_HELP = ("totals over the holder's active sessions: cpu (cores), mem (bytes or a size such as \"64g\"), "
              "cuda.device (whole GPUs), cuda.shares (GPUs counted by share); null: no limit on that slot")


def slot_limit(slot: str, value: Amount) -> str:
    """One ``max_slots`` amount, checked and normalized to its exact string (``mem`` in bytes)."""
    if slot not in KNOWN_SLOTS:
        raise ValueError(f"unknown resource slot {slot!r}; known: {', '.join(KNOWN_SLOTS)}")
    try:
        amount = Decimal(parse_size(value)) if slot == MEM else to_decimal(value, slot)
    except InvalidRequest as exc:
        raise ValueError(f"{slot}: {exc.detail}") from None
    if amount < 0:
        raise ValueError(f"{slot}: a limit must not be negative (got {value!r})")
    if amount % QUANTUM[slot] != 0:
        what = "a whole number of GPUs" if slot == CUDA_DEVICE else f"a multiple of {QUANTUM[slot]}"
        raise ValueError(f"{slot}: must be {what} (got {value!r})")
    return f"{amount.normalize():f}"


def _slot_limits(value: Mapping[str, Amount | None]) -> dict[str, str | None]:
    return {slot: None if amount is None else slot_limit(slot, amount) for slot, amount in value.items()}


class CreateResourcePolicyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(json_schema_extra={"pattern": POLICY_NAME_RE.pattern})
    max_concurrent_sessions: Count | None = Field(None, description="sessions placed or running at once")
    max_pending_sessions: Count | None = Field(None, description="sessions queued at once; more are refused")
    max_slots: dict[str, Amount | None] = Field({}, description=SLOTS_HELP)
    max_cluster_size: Annotated[StrictInt, Field(ge=1)] | None = None
    max_session_lifetime_s: Seconds | None = None
    idle_timeout_s: Seconds | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not POLICY_NAME_RE.match(value):
            raise ValueError(f"must be {NAME_RULE}")
        return value

    @field_validator("max_slots")
    @classmethod
    def _slots(cls, value: dict[str, Amount | None]) -> dict[str, str | None]:
        return _slot_limits(value)


class UpdateResourcePolicyRequest(BaseModel):
    """Only the fields given change; null removes that limit. ``max_slots`` is merged slot by slot (a slot
    given as null loses its limit)."""

    model_config = ConfigDict(extra="forbid")

    max_concurrent_sessions: Count | None = None
    max_pending_sessions: Count | None = None
    max_slots: dict[str, Amount | None] | None = Field(None, description=SLOTS_HELP)
    max_cluster_size: Annotated[StrictInt, Field(ge=1)] | None = None
    max_session_lifetime_s: Seconds | None = None
    idle_timeout_s: Seconds | None = None

    @field_validator("max_slots")
    @classmethod
    def _slots(cls, value: dict[str, Amount | None] | None) -> dict[str, str | None] | None:
        return None if value is None else _slot_limits(value)


SCALAR_LIMITS = ("max_concurrent_sessions", "max_pending_sessions", "max_cluster_size", "max_session_lifetime_s",
                 "idle_timeout_s")


def _float(value: float | int | None) -> float | None:
    return None if value is None else float(value)


class ResourcePolicyService:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    @staticmethod
    async def _view(db: AsyncSession, policy: ResourcePolicy) -> dict[str, Any]:
        users = (await db.scalars(
            select(User.username).where(User.resource_policy == policy.name).order_by(User.username)
        )).all()
        projects = (await db.scalars(
            select(Project.name).where(Project.resource_policy == policy.name).order_by(Project.name)
        )).all()
        return api.ResourcePolicy(
            name=policy.name,
            max_concurrent_sessions=policy.max_concurrent_sessions,
            max_pending_sessions=policy.max_pending_sessions,
            max_slots={slot: str(amount) for slot, amount in sorted((policy.max_slots or {}).items())
                       if amount is not None},
            max_cluster_size=policy.max_cluster_size,
            max_session_lifetime_s=policy.max_session_lifetime_s,
            idle_timeout_s=policy.idle_timeout_s,
            users=list(users), projects=list(projects), created_at=policy.created_at,
        ).to_json()

    async def list(self, user: AuthUser) -> list[dict[str, Any]]:
        require_admin(user)
        async with self._sessionmaker() as db:
            policies = (await db.scalars(select(ResourcePolicy).order_by(ResourcePolicy.name))).all()
            return [await self._view(db, p) for p in policies]

    async def info(self, user: AuthUser, name: str) -> dict[str, Any]:
        require_admin(user)
        async with self._sessionmaker() as db:
            policy = await db.get(ResourcePolicy, name)
            if policy is None:
                raise NotFound(f"no resource policy {name!r}")
            return await self._view(db, policy)

    async def create(self, user: AuthUser, req: CreateResourcePolicyRequest) -> dict[str, Any]:
        require_admin(user)
        policy = ResourcePolicy(
            name=req.name,
            max_concurrent_sessions=req.max_concurrent_sessions,
            max_pending_sessions=req.max_pending_sessions,
            max_slots={slot: amount for slot, amount in req.max_slots.items() if amount is not None},
            max_cluster_size=req.max_cluster_size,
            max_session_lifetime_s=_float(req.max_session_lifetime_s),
            idle_timeout_s=_float(req.idle_timeout_s),
            created_at=utcnow(),
        )
        async with self._sessionmaker() as db:
            if await db.get(ResourcePolicy, req.name) is not None:
                raise Conflict(f"resource policy {req.name!r} exists already")
            db.add(policy)
            try:
                await db.commit()
            except IntegrityError:
                raise Conflict(f"resource policy {req.name!r} exists already") from None
            log.info("resource policy %s created by %s", req.name, user.username)
            return await self._view(db, policy)

    async def update(self, user: AuthUser, name: str, req: UpdateResourcePolicyRequest) -> dict[str, Any]:
        require_admin(user)
        given = req.model_fields_set
        async with self._sessionmaker() as db:
            policy = await db.get(ResourcePolicy, name, with_for_update=True)
            if policy is None:
                raise NotFound(f"no resource policy {name!r}")
            for field in SCALAR_LIMITS:
                if field in given:
                    value = getattr(req, field)
                    setattr(policy, field, _float(value) if field.endswith("_s") else value)
            if "max_slots" in given:
                merged = dict(policy.max_slots or {})
                for slot, amount in (req.max_slots or {}).items():
                    if amount is None:
                        merged.pop(slot, None)
                    else:
                        merged[slot] = amount
                policy.max_slots = merged
            await db.commit()
            log.info("resource policy %s changed by %s: %s", name, user.username, sorted(given))
            return await self._view(db, policy)

    async def delete(self, user: AuthUser, name: str) -> dict[str, Any]:
        """Refused while a user or a project is held to it."""
        require_admin(user)
        async with self._sessionmaker() as db:
            policy = await db.get(ResourcePolicy, name, with_for_update=True)
            if policy is None:
                raise NotFound(f"no resource policy {name!r}")
            view = await self._view(db, policy)
            holders = [f"user {u}" for u in view["users"]] + [f"project {p}" for p in view["projects"]]
            if holders:
                shown = ", ".join(holders[:5]) + (f" and {len(holders) - 5} more" if len(holders) > 5 else "")
                raise Conflict(f"resource policy {name!r} is in use by {shown}; give them another policy (or none) "
                               "first", users=view["users"], projects=view["projects"])
            await db.delete(policy)
            await db.commit()
            log.info("resource policy %s deleted by %s", name, user.username)
            return view
