"""Projects and their members: who may use a project's vfolders.

Independent of HTTP. Who may do what:

- admins create projects and manage any project's members;
- a project's ``manager`` adds and removes members and changes their role;
- any member sees the project and its members, and may leave it;
- to everyone else a project does not exist (404).

Rights over project vfolders follow the role (see ``vfolder_service``) and are
read from the database on every request, so removing a member takes effect at
once (storage tokens already issued live out their short TTL).
"""
from __future__ import annotations

import logging
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common import api_models as api
from corral.common.errors import Conflict, InvalidRequest, NotFound, PermissionDenied, UnprocessableRequest
from corral.common.ids import new_id

from .auth import AuthUser, require_admin
from .db.models import Project, ProjectMember, ResourcePolicy, User, VFolder
from .clock import utcnow

log = logging.getLogger(__name__)

ProjectRole = Literal["member", "manager"]
MEMBER: ProjectRole = "member"
MANAGER: ProjectRole = "manager"
# The same alphabet as vfolder names: project vfolders were named by it before projects were modelled.
PROJECT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class CreateProjectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(json_schema_extra={"pattern": PROJECT_NAME_RE.pattern})
    description: str = Field("", max_length=1000)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not PROJECT_NAME_RE.match(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value


class AddMemberRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    role: ProjectRole = Field(MEMBER, description="member: uses the project's vfolders; manager: also manages "
                                                  "them and the members")


class UpdateProjectRequest(BaseModel):
    """Admins: only the fields given change; ``resource_policy`` null clears it."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(None, max_length=1000)
    resource_policy: str | None = Field(None, description="the resource policy its sessions are held to")
    fair_share: StrictFloat | StrictInt | None = Field(None, gt=0, allow_inf_nan=False,
                                                       description="its fair-share weight, > 0")


class UpdateMemberRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: ProjectRole


async def project_roles(db: AsyncSession, user_id: str) -> dict[str, str]:
    """The caller's projects: project id → role."""
    rows = await db.execute(
        select(ProjectMember.project_id, ProjectMember.role).where(ProjectMember.user_id == user_id)
    )
    return {project_id: role for project_id, role in rows}


async def find_project(db: AsyncSession, ref: str) -> Project | None:
    """A project by name, or by id."""
    project = await db.scalar(select(Project).where(Project.name == ref))
    return project if project is not None else await db.get(Project, ref)


def _role_of(project: Project, user_id: str) -> str | None:
    return next((m.role for m in project.members if m.user_id == user_id), None)


class ProjectService:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    # Lookups -------------------------------------------------------------------------
    async def _visible(self, db: AsyncSession, user: AuthUser, ref: str) -> tuple[Project, str | None]:
        """The project and the caller's role in it; 404 for those who are neither members nor admins."""
        project = await find_project(db, ref) if ref else None
        role = _role_of(project, user.user_id) if project is not None else None
        if project is None or (role is None and not user.is_admin):
            raise NotFound(f"no project {ref!r}")
        return project, role

    async def _managed(self, db: AsyncSession, user: AuthUser, ref: str) -> tuple[Project, str | None]:
        project, role = await self._visible(db, user, ref)
        if role != MANAGER and not user.is_admin:
            raise PermissionDenied(f"only a manager of project {project.name} or an admin may change its members")
        return project, role

    async def _user(self, db: AsyncSession, username: str) -> User:
        target = await db.scalar(select(User).where(User.username == username))
        if target is None:
            raise NotFound(f"no user named {username!r}")
        return target

    # Views -----------------------------------------------------------------------------
    async def _view(self, db: AsyncSession, user: AuthUser, project: Project, *, detail: bool) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if detail:
            ids = [m.user_id for m in project.members]
            rows = await db.execute(select(User.id, User.username).where(User.id.in_(ids))) if ids else []
            names = {uid: name for uid, name in rows}
            details["members"] = sorted(
                (api.ProjectMember(username=names.get(m.user_id, m.user_id), role=m.role, since=m.created_at)
                 for m in project.members),
                key=lambda m: (m.role != MANAGER, m.username),
            )
            vfolders = await db.execute(
                select(VFolder.id, VFolder.name).where(
                    VFolder.owner_kind == "project", VFolder.owner_id == project.id, VFolder.status == "ready",
                ).order_by(VFolder.name)
            )
            details["vfolders"] = [api.ProjectVfolder(id=vid, name=name) for vid, name in vfolders]
        return api.Project(
            id=project.id,
            name=project.name,
            description=project.description,
            created_at=project.created_at,
            role=_role_of(project, user.user_id),
            member_count=len(project.members),
            resource_policy=project.resource_policy,
            fair_share=project.fair_share if project.fair_share is not None else 1.0,
            **details,
        ).to_json()

    # Use cases -------------------------------------------------------------------------
    async def create(self, user: AuthUser, req: CreateProjectRequest) -> dict[str, Any]:
        require_admin(user)
        project = Project(id=new_id(), name=req.name, description=req.description, created_at=utcnow(), members=[])
        async with self.sessionmaker() as db:
            if await db.scalar(select(Project.id).where(Project.name == req.name)):
                raise Conflict(f"project {req.name!r} exists already")
            db.add(project)
            try:
                await db.commit()
            except IntegrityError:
                raise Conflict(f"project {req.name!r} exists already") from None
            log.info("project %s (%s) created by %s", project.name, project.id, user.username)
            return await self._view(db, user, project, detail=True)

    async def list(self, user: AuthUser) -> list[dict[str, Any]]:
        """The caller's projects; every project for admins."""
        async with self.sessionmaker() as db:
            query = select(Project).order_by(Project.name)
            if not user.is_admin:
                query = query.where(Project.id.in_(
                    select(ProjectMember.project_id).where(ProjectMember.user_id == user.user_id)
                ))
            projects = (await db.scalars(query)).all()
            return [await self._view(db, user, p, detail=False) for p in projects]

    async def info(self, user: AuthUser, ref: str) -> dict[str, Any]:
        async with self.sessionmaker() as db:
            project, _ = await self._visible(db, user, ref)
            return await self._view(db, user, project, detail=True)

    async def update(self, user: AuthUser, ref: str, req: UpdateProjectRequest) -> dict[str, Any]:
        """Admins change a project's description, resource policy (which must exist: 422) and fair share."""
        require_admin(user)
        given = req.model_fields_set
        async with self.sessionmaker() as db:
            project = await find_project(db, ref) if ref else None
            if project is None:
                raise NotFound(f"no project {ref!r}")
            if "description" in given:
                project.description = req.description or ""
            if "resource_policy" in given:
                if req.resource_policy is not None and await db.get(ResourcePolicy, req.resource_policy) is None:
                    raise UnprocessableRequest(f"no resource policy {req.resource_policy!r}")
                project.resource_policy = req.resource_policy
            if "fair_share" in given:
                if req.fair_share is None:
                    raise InvalidRequest("fair_share cannot be null (1 is the default weight)")
                project.fair_share = float(req.fair_share)
            await db.commit()
            log.info("project %s changed by %s: %s", project.name, user.username, sorted(given))
            return await self._view(db, user, project, detail=True)

    async def add_member(self, user: AuthUser, ref: str, req: AddMemberRequest) -> dict[str, Any]:
        async with self.sessionmaker() as db:
            project, _ = await self._managed(db, user, ref)
            target = await self._user(db, req.username)
            existing = _role_of(project, target.id)
            if existing is not None:
                raise Conflict(
                    f"{req.username} is already a {existing} of project {project.name}"
                    + ("" if existing == req.role else " (change the role instead)"),
                    role=existing,
                )
            project.members.append(ProjectMember(user_id=target.id, role=req.role, created_at=utcnow()))
            try:
                await db.commit()
            except IntegrityError:
                raise Conflict(f"{req.username} is already a member of project {project.name}") from None
            log.info("%s added to project %s as %s by %s", req.username, project.name, req.role, user.username)
            return await self._view(db, user, project, detail=True)

    async def set_member_role(
        self, user: AuthUser, ref: str, username: str, req: UpdateMemberRequest
    ) -> dict[str, Any]:
        async with self.sessionmaker() as db:
            project, _ = await self._managed(db, user, ref)
            target = await self._user(db, username)
            member = next((m for m in project.members if m.user_id == target.id), None)
            if member is None:
                raise NotFound(f"{username} is not a member of project {project.name}")
            if member.role == MANAGER and req.role != MANAGER:
                self._keep_a_manager(user, project, target.id)
            member.role = req.role
            await db.commit()
            log.info("%s is now a %s of project %s (by %s)", username, req.role, project.name, user.username)
            return await self._view(db, user, project, detail=True)

    async def remove_member(self, user: AuthUser, ref: str, username: str) -> dict[str, Any] | None:
        """Managers and admins remove anyone; a member may leave. None when the caller no longer sees the project."""
        async with self.sessionmaker() as db:
            project, role = await self._visible(db, user, ref)
            target = await self._user(db, username)
            if target.id != user.user_id and role != MANAGER and not user.is_admin:
                raise PermissionDenied(f"only a manager of project {project.name} or an admin may remove its members")
            member = next((m for m in project.members if m.user_id == target.id), None)
            if member is None:
                raise NotFound(f"{username} is not a member of project {project.name}")
            if member.role == MANAGER:
                self._keep_a_manager(user, project, target.id)
            project.members.remove(member)
            await db.commit()
            log.info("%s removed from project %s by %s", username, project.name, user.username)
            if target.id == user.user_id and not user.is_admin:
                return None
            return await self._view(db, user, project, detail=True)

    @staticmethod
    def _keep_a_manager(user: AuthUser, project: Project, leaving_user_id: str) -> None:
        """Members may not leave a project without a manager; admins may (they can always add one back)."""
        if user.is_admin:
            return
        others = [m for m in project.members if m.role == MANAGER and m.user_id != leaving_user_id]
        if not others:
            raise Conflict(f"project {project.name} would be left without a manager; make someone else a manager "
                           "first (or ask an admin)")
