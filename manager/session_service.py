"""Session use cases: create, find, list, destroy; independent of HTTP."""
from __future__ import annotations

import base64
import logging
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common.allocator import NodeState
from corral.common.errors import Conflict, InvalidRequest, NotFound, PermissionDenied, UnsatisfiableRequest
from corral.common.ids import new_id, short_id
from corral.common.node_resources import NodeCapacity
from corral.common.slots import ResourceSlot
from corral.common.ssh_keys import generate_ed25519

from .auth import AuthUser
from .clock import utcnow
from .db.models import Agent, Kernel, Project, Session, SessionStatusChange, User
from .events import EventHub
from .lifecycle.moves import move_kernels, move_session, record_created
from .lifecycle.preemption import stop_preemption
from .lifecycle.terminator import Terminator
from .scheduler.gang import ever_fits
from .scheduler.wakeup import Wakeup
from .session_admission import admit, check_queue
from .session_requests import CreateSessionRequest, image_ref
from .session_views import session_view
from .states import TERMINAL, AgentStatus, SessionStatus

log = logging.getLogger(__name__)


class MountResolver(Protocol):
    async def resolve_mounts(self, user: AuthUser, specs: Any) -> tuple[list[dict[str, Any]], list[str]]: ...


class SessionService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        hub: EventHub,
        mounts: MountResolver,
        terminator: Terminator,
        wakeup: Wakeup,
        default_image: str,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._hub = hub
        self._mounts = mounts
        self._terminator = terminator
        self._wakeup = wakeup
        self._default_image = default_image

    # Creation ---------------------------------------------------------------
    async def create(self, user: AuthUser, req: CreateSessionRequest) -> dict[str, Any]:
        request = req.resources.to_slots()
        argv = req.argv()
        if req.type == "batch" and not argv:
            raise InvalidRequest("a batch session needs a command")
        mounts, mount_notes = await self._mounts.resolve_mounts(user, req.mounts)
        async with self._sessionmaker() as db:
            placement = await admit(db, user, req, request)
            await self._check_satisfiable(db, request, placement.resource_group, req.cluster_size, req.cluster_mode)
            name = req.name or f"s-{short_id(new_id())}"
            clash = await db.scalar(
                select(Session.id).where(
                    Session.owner_id == user.user_id, Session.name == name, Session.status.not_in(list(TERMINAL))
                )
            )
            if clash:
                raise Conflict(f"you already have an active session named {name!r}")
            await check_queue(db, placement)
            now = utcnow()
            sess = Session(
                id=new_id(),
                name=name,
                owner_id=user.user_id,
                access_key=user.access_key,
                type=req.type,
                status=SessionStatus.PENDING,
                status_reason="",
                status_changed_at=now,
                image=image_ref(req.image or self._default_image),
                command=argv,
                env=req.env,
                requested_slots=request.to_json(),
                mounts=mounts,
                resource_group=placement.resource_group,
                project_id=placement.project_id,
                priority=placement.priority,
                cluster_size=req.cluster_size,
                cluster_mode=req.cluster_mode,
                cluster_ssh_key=(generate_ed25519(f"corral-cluster-{name}").private_openssh.decode()
                                 if req.cluster_size > 1 else None),
                created_at=now,
            )
            sess.kernels = [
                Kernel(
                    id=new_id(),
                    session_id=sess.id,
                    cluster_idx=idx,
                    status=SessionStatus.PENDING,
                    requested_slots=request.to_json(),
                    status_changed_at=now,
                )
                for idx in range(req.cluster_size)
            ]
            reason = "; ".join(["queued for scheduling", *mount_notes])
            sess.status_reason = reason
            db.add(sess)
            record_created(db, self._hub, sess, reason)
            await db.commit()
            gang = f" × {req.cluster_size} kernels ({req.cluster_mode})" if req.cluster_size > 1 else ""
            log.info("session %s (%s) created by %s: %s%s", sess.name, sess.id, user.username, request, gang)
        self._wakeup.trigger()
        return await self.info(user, sess.id)

    async def _check_satisfiable(self, db: AsyncSession, request: ResourceSlot, resource_group: str,
                                 cluster_size: int = 1, cluster_mode: str = "single-node") -> None:
        agents = (
            await db.scalars(
                select(Agent).where(Agent.status == AgentStatus.ALIVE, Agent.resource_group == resource_group)
            )
        ).all()
        if not agents:
            return  # nothing registered yet: stay pending until an agent joins
        if cluster_size > 1:
            states = [NodeState(NodeCapacity.from_json(agent.capacity)) for agent in agents]
            if not ever_fits(states, request, cluster_size, cluster_mode):
                where = ("on one node" if cluster_mode == "single-node"
                         else f"on {cluster_size} different nodes (multi-node: one kernel per node)")
                raise UnsatisfiableRequest(
                    f"resource group {resource_group!r} has no room for {cluster_size} kernels of this request "
                    f"{where}, even with nothing else running ({len(agents)} agents alive)",
                    slots=sorted(request.keys()),
                )
            return
        missing: set[str] = set()
        for agent in agents:
            lacking = NodeState(NodeCapacity.from_json(agent.capacity)).can_ever_fit(request)
            if not lacking:
                return
            missing.update(lacking)
        names = ", ".join(sorted(missing))
        raise UnsatisfiableRequest(
            f"no agent in resource group {resource_group!r} could ever fit this request (too much: {names})",
            slots=sorted(missing),
        )

    # Lookup -------------------------------------------------------------------
    async def resolve(self, db: AsyncSession, user: AuthUser, ref: str) -> Session:
        """Find a session by id, unique id prefix or name; others' sessions are invisible.

        A name is looked up among the caller's own sessions; an admin may also name another
        user's session as ``OWNER/NAME``.
        """
        visible = [] if user.is_admin else [Session.owner_id == user.user_id]
        sess = await db.scalar(select(Session).where(Session.id == ref, *visible))
        if sess is not None:
            return sess
        if (found := await self._by_name(db, user.user_id, ref)) is not None:
            return found
        owner_name, slash, name = ref.partition("/")
        if slash and user.is_admin and owner_name and name:
            owner_id = await db.scalar(select(User.id).where(User.username == owner_name))
            if owner_id is None:
                raise NotFound(f"no session {ref!r}: no user {owner_name!r}")
            if (found := await self._by_name(db, owner_id, name)) is not None:
                return found
        if len(ref) >= 4 and all(c in "0123456789abcdef-" for c in ref.lower()):
            matches = (
                await db.scalars(select(Session).where(Session.id.startswith(ref.lower()), *visible).limit(2))
            ).all()
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise Conflict(f"session id prefix {ref!r} is ambiguous; give more characters")
        raise NotFound(f"no session {ref!r}")

    @staticmethod
    async def _by_name(db: AsyncSession, owner_id: str, name: str) -> Session | None:
        """The owner's active session of that name, else their latest ended one."""
        by_name = (
            await db.scalars(
                select(Session)
                .where(Session.name == name, Session.owner_id == owner_id)
                .order_by(Session.created_at.desc())
                .limit(20)
            )
        ).all()
        active = [s for s in by_name if s.status not in TERMINAL]
        return (active or list(by_name) or [None])[0]

    async def info(self, user: AuthUser, ref: str) -> dict[str, Any]:
        async with self._sessionmaker() as db:
            sess = await self.resolve(db, user, ref)
            history = (
                await db.scalars(
                    select(SessionStatusChange)
                    .where(SessionStatusChange.session_id == sess.id)
                    .order_by(SessionStatusChange.id)
                )
            ).all()
            owner = await db.get(User, sess.owner_id)
            project = await db.get(Project, sess.project_id) if sess.project_id else None
            return session_view(sess, owner.username if owner else None, history,
                                project_name=project.name if project else None)

    async def list(
        self, user: AuthUser, statuses: list[str] | None, include_terminated: bool, limit: int, cursor: str | None,
        all_users: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The caller's sessions, newest first; every user's with ``all_users`` (admins only)."""
        if all_users and not user.is_admin:
            raise PermissionDenied("only admins can list other users' sessions (all_users)")
        query = (
            select(Session, User.username, Project.name.label("project_name"))
            .join(User, User.id == Session.owner_id)
            .outerjoin(Project, Project.id == Session.project_id)
        )
        if not all_users:
            query = query.where(Session.owner_id == user.user_id)
        if statuses:
            query = query.where(Session.status.in_(statuses))
        elif not include_terminated:
            query = query.where(Session.status.not_in(list(TERMINAL)))
        if cursor:
            created, sid = _decode_cursor(cursor)
            query = query.where(
                or_(Session.created_at < created, and_(Session.created_at == created, Session.id < sid))
            )
        query = query.order_by(Session.created_at.desc(), Session.id.desc()).limit(limit + 1)
        async with self._sessionmaker() as db:
            rows = (await db.execute(query)).all()
        page = rows[:limit]
        next_cursor = _encode_cursor(page[-1].Session) if len(rows) > limit else None
        return [session_view(r.Session, r.username, project_name=r.project_name) for r in page], next_cursor

    # Destruction ------------------------------------------------------------------
    async def destroy(self, user: AuthUser, ref: str, reason: str = "destroyed by user") -> tuple[dict[str, Any], bool]:
        """Cancel a pending session or start terminating a placed one: (its view, whether that is final).

        Decided by guarded moves, not by an earlier read: if the scheduler placed the session between
        the two attempts, the second one (``→ TERMINATING``) wins instead, and the answer says so. A
        session being preempted is taken over (`stop_preemption`): it ends instead of going back to the
        queue; one that went back to the queue meanwhile is cancelled.
        """
        async with self._sessionmaker() as db:
            session_id = (await self.resolve(db, user, ref)).id
        final = False
        for _ in range(8):
            async with self._sessionmaker() as db:
                if await move_session(db, self._hub, session_id, SessionStatus.CANCELLED, reason):
                    await move_kernels(db, SessionStatus.CANCELLED, reason, session_id=session_id)
                    await db.commit()
                    final = True
                    break
                if await move_session(db, self._hub, session_id, SessionStatus.TERMINATING, reason):
                    await db.commit()
                    self._terminator.spawn(session_id)
                    break
                status = await db.scalar(select(Session.status).where(Session.id == session_id))
                if status == SessionStatus.TERMINATING:
                    if await stop_preemption(db, self._hub, session_id, reason):
                        await db.commit()
                        log.info("session %s destroyed while being preempted: it will not be requeued", session_id)
                    else:  # not being preempted, or back in the queue since the read: then decide again
                        status = await db.scalar(select(Session.status).where(Session.id == session_id))
            if status in TERMINAL:
                final = True  # already ended: destroying it again is not an error (its final state)
                break
            if status == SessionStatus.TERMINATING:
                self._terminator.spawn(session_id)  # no-op while one runs; re-drives one that stalled
                break
            # It moved between the two attempts (e.g. PENDING → SCHEDULED, or back): decide again.
        return await self.info(user, session_id), final


def _encode_cursor(sess: Session) -> str:
    return base64.urlsafe_b64encode(f"{sess.created_at.isoformat()}|{sess.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, sid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), sid
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("invalid cursor") from None
