"""Vfolder use cases: create, find, list, rename, trash, restore, purge, share, tokens, mounts.

Independent of HTTP. Who may do what:

- a user vfolder's owner, the managers of a project vfolder's project and
  admins *manage* it (rename, quota, trash, restore, purge, share) and read
  and write it;
- the other members of the project read and write a project vfolder, and may
  create new ones in the project; to anyone else it does not exist (404 by
  name), unless shared with them;
- a user it is shared with reads it (``ro``) or reads and writes it (``rw``),
  and may drop the share.

Project roles are read from the database on every request, so a member who is
removed loses access at once; storage tokens already issued live out their
short TTL, and sessions already running keep their mounts.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Mapping, Sequence

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.common import api_models as api
from corral.common.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from corral.common.ids import new_id
from corral.common.slots import format_size, parse_size
from corral.common.vfolder_token import issue_vfolder_token

from ..auth import AuthUser
from ..db.models import Project, Session, User, VFolder, VFolderShare
from ..project_service import MANAGER, find_project, project_roles
from ..states import TERMINAL
from ..clock import utcnow
from .mounts import VFOLDER_NAME_RE, parse_mounts
from .proxies import StorageProxies, split_host
from .proxy_client import StorageProxyClient

log = logging.getLogger(__name__)

READY = "ready"
TRASHED = "trashed"
Permission = Literal["ro", "rw"]


def _check_name(value: str | None) -> str | None:
    if value is not None and not VFOLDER_NAME_RE.match(value):
        raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def _quota(value: int | str | None) -> int | None:
    if value is None:
        return None
    try:
        quota = parse_size(value)
    except InvalidRequest as exc:
        raise ValueError(exc.detail) from None
    if quota <= 0:
        raise ValueError("must be positive (leave it out for no quota)")
    return quota


def _checked_quota(value: int | str) -> int | str:
    _quota(value)
    return value


# Request fields: checked where they are declared, so every request model shares the rules.
VfolderName = Annotated[str, AfterValidator(_check_name), Field(json_schema_extra={"pattern": VFOLDER_NAME_RE.pattern})]
QuotaSpec = Annotated[int | str, AfterValidator(_checked_quota)]


class CreateVfolderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: VfolderName
    quota: QuotaSpec | None = Field(None, description="bytes, or a size like 10g; none = unlimited")
    host: str | None = Field(None, description="PROXY:VOLUME; default: the manager's [storage] default_host")
    project: VfolderName | None = Field(
        None, description="owned by this project (name or id) instead of the caller; needs membership"
    )


class UpdateVfolderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: VfolderName | None = Field(None, description="new name")
    quota: QuotaSpec | None = Field(None, description="new quota (bytes or a size like 10g)")
    unlimited: bool = Field(False, description="remove the quota")


class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    permission: Permission = "ro"


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    permission: Permission = "ro"


@dataclass(frozen=True)
class Access:
    vfolder: VFolder
    permission: Permission
    manages: bool


class VfolderService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        proxies: StorageProxies,
        client: StorageProxyClient,
        token_ttl_s: int,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._token_ttl_s = token_ttl_s
        self.proxies = proxies
        self.client = client

    async def close(self) -> None:
        await self.client.close()

    # Access -------------------------------------------------------------------------
    def _access(self, user: AuthUser, vf: VFolder, roles: Mapping[str, str]) -> Access | None:
        """The caller's rights; ``roles`` are their projects (project id → role)."""
        if vf.owner_kind == "user":
            manages = vf.owner_id == user.user_id
        else:
            manages = roles.get(vf.owner_id) == MANAGER
        if manages or user.is_admin:
            return Access(vf, "rw", True)
        if vf.owner_kind == "project" and vf.owner_id in roles:
            return Access(vf, "rw", False)
        for share in vf.shares:
            if share.user_id == user.user_id:
                return Access(vf, "rw" if share.permission == "rw" else "ro", False)
        return None

    async def resolve(self, db: AsyncSession, user: AuthUser, ref: str, *, status: str = READY) -> Access:
        """A vfolder by id, unique id prefix or name: own first, then those of the caller's projects, then shared."""
        if not ref:
            raise InvalidRequest("a vfolder name or id is required")
        roles = await project_roles(db, user.user_id)
        by_id = await db.get(VFolder, ref)
        if by_id is not None and by_id.status == status:
            access = self._access(user, by_id, roles)
            if access is None:
                raise PermissionDenied(f"vfolder {ref} is not yours and not shared with you")
            return access
        if "/" in ref:
            return await self._resolve_owned(db, user, ref, status, roles)
        own = (await db.scalars(select(VFolder).where(
            VFolder.name == ref, VFolder.status == status, VFolder.owner_kind == "user", VFolder.owner_id == user.user_id,
        ))).all()
        in_projects = (await db.scalars(select(VFolder).where(
            VFolder.name == ref, VFolder.status == status, VFolder.owner_kind == "project",
            VFolder.owner_id.in_(list(roles)),
        ))).all() if roles else []
        shared = (await db.scalars(select(VFolder).join(VFolderShare, VFolderShare.vfolder_id == VFolder.id).where(
            VFolder.name == ref, VFolder.status == status, VFolderShare.user_id == user.user_id,
        ))).all()
        for tier in (own, in_projects, shared):
            if len(tier) == 1:
                access = self._access(user, tier[0], roles)
                assert access is not None
                return access
            if len(tier) > 1:
                ids = ", ".join(vf.id for vf in tier)
                raise Conflict(f"several {status} vfolders are named {ref!r} ({ids}); use the id")
        if len(ref) >= 4 and all(c in "0123456789abcdef-" for c in ref.lower()):
            matches = (await db.scalars(
                select(VFolder).where(VFolder.id.startswith(ref.lower()), VFolder.status == status).limit(2)
            )).all()
            visible = [a for a in (self._access(user, vf, roles) for vf in matches) if a is not None]
            if len(matches) == 1 and visible:
                return visible[0]
            if len(matches) > 1:
                raise Conflict(f"vfolder id prefix {ref!r} is ambiguous; give more characters")
        if status == READY:
            trashed = (by_id is not None and self._access(user, by_id, roles) is not None) or await db.scalar(
                select(VFolder.id).where(
                    VFolder.name == ref, VFolder.status == TRASHED, self._owned_by(user, roles),
                ).limit(1)
            )
            if trashed:
                raise NotFound(f"vfolder {ref!r} is in the trash (`corral vfolder restore {ref}` brings it back)")
        raise NotFound(f"no {'vfolder' if status == READY else 'trashed vfolder'} {ref!r}")

    async def _resolve_owned(
        self, db: AsyncSession, user: AuthUser, ref: str, status: str, roles: Mapping[str, str]
    ) -> Access:
        """``OWNER/NAME``: vfolder NAME of user or project OWNER, when the caller may see it."""
        owner, _, name = ref.partition("/")
        if not owner or not name or "/" in name:
            raise InvalidRequest(f"{ref!r}: expected NAME or OWNER/NAME (a username or project name, then the vfolder)")
        owner_ids = [uid for uid in (
            await db.scalar(select(User.id).where(User.username == owner)),
            await db.scalar(select(Project.id).where(Project.name == owner)),
        ) if uid is not None]
        found = (await db.scalars(select(VFolder).where(
            VFolder.name == name, VFolder.status == status, VFolder.owner_id.in_(owner_ids),
        ))).all() if owner_ids else []
        visible = [a for a in (self._access(user, vf, roles) for vf in found) if a is not None]
        if len(visible) == 1:
            return visible[0]
        if len(visible) > 1:
            raise Conflict(f"several {status} vfolders match {ref!r} ({', '.join(a.vfolder.id for a in visible)}); use the id")
        what = "vfolder" if status == READY else "trashed vfolder"
        raise NotFound(f"no {what} {name!r} of {owner!r} that you can use")

    async def _shadowed(self, db: AsyncSession, user: AuthUser, ref: str, chosen: VFolder) -> list[str]:
        """Owners of the other vfolders named ``ref`` the caller could use (a bare name picked ``chosen``)."""
        if "/" in ref or ref != chosen.name:
            return []
        roles = await project_roles(db, user.user_id)
        same = (await db.scalars(select(VFolder).where(
            VFolder.name == ref, VFolder.status == READY, VFolder.id != chosen.id,
        ))).all()
        return sorted({await self.owner_name(db, vf) for vf in same if self._access(user, vf, roles) is not None})

    async def owner_name(self, db: AsyncSession, vf: VFolder) -> str:
        """The username or project name that owns ``vf``."""
        if vf.owner_kind == "user":
            return (await self._names(db, {vf.owner_id})).get(vf.owner_id, vf.owner_id)
        return (await self._project_names(db, {vf.owner_id})).get(vf.owner_id, vf.owner_id)

    @staticmethod
    def _owned_by(user: AuthUser, roles: Mapping[str, str]) -> Any:
        """A filter: the caller's own vfolders and those of their projects."""
        own = (VFolder.owner_kind == "user") & (VFolder.owner_id == user.user_id)
        if not roles:
            return own
        return own | ((VFolder.owner_kind == "project") & VFolder.owner_id.in_(list(roles)))

    def _require_manager(self, access: Access, what: str) -> None:
        if not access.manages:
            vf = access.vfolder
            who = "a manager of its project" if vf.owner_kind == "project" else "the owner"
            raise PermissionDenied(f"only {who} may {what} vfolder {vf.name}")

    # Views ---------------------------------------------------------------------------
    async def _names(self, db: AsyncSession, user_ids: set[str]) -> dict[str, str]:
        if not user_ids:
            return {}
        rows = await db.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
        return {uid: name for uid, name in rows}

    async def _project_names(self, db: AsyncSession, project_ids: set[str]) -> dict[str, str]:
        if not project_ids:
            return {}
        rows = await db.execute(select(Project.id, Project.name).where(Project.id.in_(project_ids)))
        return {pid: name for pid, name in rows}

    async def _view_models(self, db: AsyncSession, user: AuthUser, accesses: Sequence[Access]) -> list[api.Vfolder]:
        ids: set[str] = set()
        project_ids: set[str] = set()
        for access in accesses:
            vf = access.vfolder
            ids.add(vf.creator_id)
            (ids if vf.owner_kind == "user" else project_ids).add(vf.owner_id)
            ids.update(s.user_id for s in vf.shares)
        names = await self._names(db, ids)
        projects = await self._project_names(db, project_ids)
        views = []
        for access in accesses:
            vf = access.vfolder
            project = projects.get(vf.owner_id, vf.owner_id) if vf.owner_kind == "project" else None
            shares: dict[str, Any] = {}
            if access.manages:  # only those who manage a vfolder see who else has it
                shares["shared_with"] = sorted(
                    (api.VfolderShare(username=names.get(s.user_id, s.user_id), permission=s.permission)
                     for s in vf.shares),
                    key=lambda s: s["username"],
                )
            views.append(api.Vfolder(
                id=vf.id,
                name=vf.name,
                owner=names.get(vf.owner_id, vf.owner_id) if vf.owner_kind == "user" else project,
                owner_kind=vf.owner_kind,
                project=project,
                creator=names.get(vf.creator_id, vf.creator_id),
                host=vf.host,
                vfid=vf.vfid,
                quota_bytes=vf.quota_bytes,
                status=vf.status,
                permission=access.permission,
                is_owner=access.manages,
                created_at=vf.created_at,
                updated_at=vf.updated_at,
                trashed_at=vf.trashed_at,
                **shares,
            ))
        return views

    async def _views(self, db: AsyncSession, user: AuthUser, accesses: Sequence[Access]) -> list[dict[str, Any]]:
        return [view.to_json() for view in await self._view_models(db, user, accesses)]

    async def _view(self, db: AsyncSession, user: AuthUser, access: Access) -> dict[str, Any]:
        return (await self._views(db, user, [access]))[0]

    # Use cases -------------------------------------------------------------------------
    async def hosts(self) -> list[dict[str, Any]]:
        """Every proxy:volume with its backend and capabilities; unreachable proxies say so."""
        default = await self.proxies.default_host() if await self.proxies.all() else ""
        hosts: list[dict[str, Any]] = []
        for proxy in sorted((await self.proxies.all()).values(), key=lambda p: p.name):
            try:
                volumes = await self.client.list_volumes(proxy)
            except Exception as exc:  # noqa: BLE001 - list what answers, name what does not
                hosts.append(api.StorageHost(host=proxy.name, proxy=proxy.name, volume=None, error=str(exc)))
                continue
            for volume in volumes:
                name = f"{proxy.name}:{volume.get('name')}"
                hosts.append(api.StorageHost(
                    host=name, proxy=proxy.name, volume=volume.get("name"),
                    backend=volume.get("backend"), capabilities=volume.get("capabilities", []),
                    default=name == default or (default == proxy.name and volume is volumes[0]),
                ))
        return hosts

    async def _pick_host(self, requested: str | None) -> tuple[str, str]:
        proxy_name, volume = split_host(requested or await self.proxies.default_host())
        proxy = await self.proxies.get(proxy_name)
        if not volume:
            volumes = await self.client.list_volumes(proxy)
            if not volumes:
                raise InvalidRequest(f"storage proxy {proxy_name} has no volumes")
            volume = str(volumes[0]["name"])
        return proxy_name, volume

    async def create(self, user: AuthUser, req: CreateVfolderRequest) -> dict[str, Any]:
        quota = _quota(req.quota)
        async with self._sessionmaker() as db:
            if req.project:
                owner_kind, owner_id = "project", await self._project_for_new_vfolder(db, user, req.project)
            else:
                owner_kind, owner_id = "user", user.user_id
            await self._check_free(db, owner_kind, owner_id, req.name)
        proxy_name, volume = await self._pick_host(req.host)
        proxy = await self.proxies.get(proxy_name)
        vfid = uuid.uuid4().hex
        await self.client.create_vfolder(proxy, volume, vfid, quota)
        now = utcnow()
        vf = VFolder(
            id=new_id(), name=req.name, owner_kind=owner_kind, owner_id=owner_id, creator_id=user.user_id,
            proxy=proxy_name, volume=volume, vfid=vfid, quota_bytes=quota, status=READY,
            created_at=now, updated_at=now, shares=[],
        )
        try:
            async with self._sessionmaker() as db:
                db.add(vf)
                await db.commit()
        except IntegrityError:
            await self._drop_on_proxy(vf)
            raise Conflict(f"a vfolder named {req.name!r} already exists") from None
        log.info("vfolder %s (%s) created by %s on %s:%s", vf.name, vf.id, user.username, proxy_name, volume)
        async with self._sessionmaker() as db:
            return await self._view(db, user, await self.resolve(db, user, vf.id))

    async def _project_for_new_vfolder(self, db: AsyncSession, user: AuthUser, ref: str) -> str:
        """The id of project ``ref`` if the caller may create vfolders in it: any member may, admins included."""
        project = await find_project(db, ref)
        roles = await project_roles(db, user.user_id)
        if project is None or (project.id not in roles and not user.is_admin):
            raise NotFound(f"no project {ref!r} that you are a member of")
        if project.id not in roles:
            raise PermissionDenied(
                f"only members create vfolders in project {project.name}; "
                f"add yourself first: corral project add-member {project.name} {user.username}"
            )
        return project.id

    async def _check_free(self, db: AsyncSession, owner_kind: str, owner_id: str, name: str) -> None:
        clash = await db.scalar(select(VFolder.id).where(
            VFolder.owner_kind == owner_kind, VFolder.owner_id == owner_id, VFolder.name == name,
            VFolder.status == READY,
        ))
        if clash:
            if owner_kind == "user":
                whose = "you already have"
            else:
                project = await db.get(Project, owner_id)
                whose = f"project {project.name if project else owner_id} already has"
            raise Conflict(f"{whose} a vfolder named {name!r}", vfolder_id=clash)

    async def _drop_on_proxy(self, vf: VFolder) -> None:
        try:
            await self.client.delete_vfolder(await self.proxies.get(vf.proxy), vf.volume, vf.vfid)
        except NotFound:
            pass

    async def list(self, user: AuthUser, *, trashed: bool = False) -> list[dict[str, Any]]:
        status = TRASHED if trashed else READY
        async with self._sessionmaker() as db:
            roles = await project_roles(db, user.user_id)
            owned = (await db.scalars(
                select(VFolder).where(VFolder.status == status, self._owned_by(user, roles))
            )).all()
            shared = [] if trashed else (await db.scalars(
                select(VFolder).join(VFolderShare, VFolderShare.vfolder_id == VFolder.id)
                .where(VFolder.status == status, VFolderShare.user_id == user.user_id)
            )).all()
            seen: dict[str, Access] = {}
            for vf in [*owned, *shared]:
                access = self._access(user, vf, roles)
                if access is not None:
                    seen.setdefault(vf.id, access)
            ordered = sorted(seen.values(), key=lambda a: (not a.manages, a.vfolder.name, a.vfolder.created_at))
            return await self._views(db, user, ordered)

    async def info(self, user: AuthUser, ref: str, *, with_usage: bool = True) -> dict[str, Any]:
        async with self._sessionmaker() as db:
            access = await self.resolve(db, user, ref)
            [view] = await self._view_models(db, user, [access])
        if with_usage:
            vf = access.vfolder
            try:
                usage = await self.client.usage(await self.proxies.get(vf.proxy), vf.volume, vf.vfid)
                counts = api.VfolderUsage(**{k: usage.get(k) for k in api.VfolderUsage.__annotations__})
                over_quota = vf.quota_bytes is not None and int(usage.get("bytes", 0)) >= vf.quota_bytes
                view = view.model_copy(update={"usage": counts, "over_quota": over_quota})
            except Exception as exc:  # noqa: BLE001 - the vfolder's record is still worth showing
                view = view.model_copy(update={"usage": None, "usage_error": str(exc)})
        return view.to_json()

    async def update(self, user: AuthUser, ref: str, req: UpdateVfolderRequest) -> dict[str, Any]:
        if req.unlimited and req.quota is not None:
            raise InvalidRequest("give a quota or unlimited, not both")
        async with self._sessionmaker() as db:
            access = await self.resolve(db, user, ref)
            self._require_manager(access, "change")
            vf = access.vfolder
            if req.quota is not None or req.unlimited:
                quota = None if req.unlimited else _quota(req.quota)
                await self.client.set_quota(await self.proxies.get(vf.proxy), vf.volume, vf.vfid, quota)
                vf.quota_bytes = quota
            if req.name is not None and req.name != vf.name:
                await self._check_free(db, vf.owner_kind, vf.owner_id, req.name)
                vf.name = req.name
            vf.updated_at = utcnow()
            try:
                await db.commit()
            except IntegrityError:
                raise Conflict(f"a vfolder named {req.name!r} already exists") from None
            return await self._view(db, user, access)

    async def trash(self, user: AuthUser, ref: str) -> dict[str, Any]:
        async with self._sessionmaker() as db:
            access = await self.resolve(db, user, ref)
            self._require_manager(access, "delete")
            vf = access.vfolder
            users = await self._active_sessions_mounting(db, vf.id)
            if users:
                raise Conflict(
                    f"vfolder {vf.name} is mounted by active session(s) {', '.join(sorted(users))}; end them first",
                    sessions=sorted(users),
                )
            vf.status = TRASHED
            vf.trashed_at = vf.updated_at = utcnow()
            await db.commit()
            log.info("vfolder %s (%s) moved to the trash by %s", vf.name, vf.id, user.username)
            return await self._view(db, user, access)

    async def _active_sessions_mounting(self, db: AsyncSession, vfolder_id: str) -> set[str]:
        rows = await db.execute(select(Session.name, Session.mounts).where(Session.status.not_in(list(TERMINAL))))
        return {
            name for name, mounts in rows
            if any(isinstance(m, dict) and m.get("vfolder_id") == vfolder_id for m in mounts or [])
        }

    async def restore(self, user: AuthUser, ref: str) -> dict[str, Any]:
        async with self._sessionmaker() as db:
            access = await self.resolve(db, user, ref, status=TRASHED)
            self._require_manager(access, "restore")
            vf = access.vfolder
            await self._check_free(db, vf.owner_kind, vf.owner_id, vf.name)
            vf.status = READY
            vf.trashed_at = None
            vf.updated_at = utcnow()
            try:
                await db.commit()
            except IntegrityError:
                raise Conflict(f"a vfolder named {vf.name!r} exists again; rename that one first") from None
            return await self._view(db, user, access)

    async def purge(self, user: AuthUser, ref: str) -> dict[str, Any]:
        """Delete a trashed vfolder for good, on the proxy first (its files are gone then)."""
        async with self._sessionmaker() as db:
            try:
                access = await self.resolve(db, user, ref, status=TRASHED)
            except NotFound:
                roles = await project_roles(db, user.user_id)
                ready = await db.scalar(select(VFolder.id).where(
                    VFolder.name == ref, VFolder.status == READY, self._owned_by(user, roles),
                ).limit(1))
                if ready or await db.get(VFolder, ref) is not None:
                    raise Conflict(f"vfolder {ref!r} is not in the trash; delete it first") from None
                raise
            self._require_manager(access, "purge")
            vf = access.vfolder
            [view] = await self._view_models(db, user, [access])
        await self._drop_on_proxy(vf)
        async with self._sessionmaker() as db:
            await db.execute(delete(VFolderShare).where(VFolderShare.vfolder_id == vf.id))
            await db.execute(delete(VFolder).where(VFolder.id == vf.id))
            await db.commit()
        log.info("vfolder %s (%s) purged by %s", vf.name, vf.id, user.username)
        return view.model_copy(update={"status": "purged"}).to_json()

    async def share(self, user: AuthUser, ref: str, req: ShareRequest) -> dict[str, Any]:
        async with self._sessionmaker() as db:
            access = await self.resolve(db, user, ref)
            self._require_manager(access, "share")
            vf = access.vfolder
            target = await db.scalar(select(User).where(User.username == req.username))
            if target is None:
                raise NotFound(f"no user named {req.username!r}")
            if vf.owner_kind == "user" and target.id == vf.owner_id:
                raise InvalidRequest(f"{req.username} owns vfolder {vf.name} already")
            existing = next((s for s in vf.shares if s.user_id == target.id), None)
            if existing is not None:
                existing.permission = req.permission
            else:
                vf.shares.append(VFolderShare(user_id=target.id, permission=req.permission, created_at=utcnow()))
            vf.updated_at = utcnow()
            await db.commit()
            log.info("vfolder %s shared with %s (%s) by %s", vf.name, req.username, req.permission, user.username)
            return await self._view(db, user, access)

    async def unshare(self, user: AuthUser, ref: str, username: str) -> dict[str, Any] | None:
        async with self._sessionmaker() as db:
            access = await self.resolve(db, user, ref)
            vf = access.vfolder
            target = await db.scalar(select(User).where(User.username == username))
            if target is None:
                raise NotFound(f"no user named {username!r}")
            if not access.manages and target.id != user.user_id:
                raise PermissionDenied(f"only the owner of vfolder {vf.name} may change who it is shared with")
            share = next((s for s in vf.shares if s.user_id == target.id), None)
            if share is None:
                raise NotFound(f"vfolder {vf.name} is not shared with {username}")
            vf.shares.remove(share)
            vf.updated_at = utcnow()
            await db.commit()
            return await self._view(db, user, access) if access.manages else None

    async def token(self, user: AuthUser, ref: str, req: TokenRequest) -> dict[str, Any]:
        async with self._sessionmaker() as db:
            access = await self.resolve(db, user, ref)
        vf = access.vfolder
        if req.permission == "rw" and access.permission != "rw":
            raise PermissionDenied(f"vfolder {vf.name} is shared with you read-only")
        proxy = await self.proxies.get(vf.proxy)
        ttl = self._token_ttl_s
        now = datetime.now(timezone.utc)
        token = issue_vfolder_token(
            proxy.jwt_secret, vfolder_id=vf.vfid, volume=vf.volume, user=user.username, permission=req.permission,
            ttl_s=ttl, quota_bytes=vf.quota_bytes if req.permission == "rw" else None, now=now.timestamp(),
        )
        return api.VfolderToken(
            client_url=proxy.client_url,
            token=token,
            vfid=vf.vfid,
            vfolder_id=vf.id,
            name=vf.name,
            permission=req.permission,
            quota_bytes=vf.quota_bytes,
            expires_at=now.replace(microsecond=0) + timedelta(seconds=ttl),
        ).to_json()

    # Sessions -------------------------------------------------------------------------
    async def resolve_mounts(self, user: AuthUser, specs: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """``NAME[:PATH][:ro]`` → what the agent bind-mounts, plus notes for the session's history.

        Read-only when asked, when the vfolder is shared read-only, or when it
        is over its quota now (then a note says so).
        """
        if not specs:
            return [], []
        requests = parse_mounts(specs)
        async with self._sessionmaker() as db:
            accesses = [await self.resolve(db, user, m.name) for m in requests]
            owners = [await self.owner_name(db, a.vfolder) for a in accesses]
            shadowed = [await self._shadowed(db, user, m.name, a.vfolder) for m, a in zip(requests, accesses)]
        mounts: list[dict[str, Any]] = []
        notes: list[str] = []
        for request, access, owner, others in zip(requests, accesses, owners, shadowed):
            vf = access.vfolder
            if others:
                picks = ", ".join(f"--mount {o}/{vf.name}" for o in others)
                notes.append(f"mount {request.spec!r}: mounted {owner}/{vf.name}; also named {vf.name!r}: {picks}")
            if request.mode == "rw" and access.permission != "rw":
                raise PermissionDenied(f"mount {request.spec!r}: vfolder {vf.name} is shared with you read-only")
            proxy = await self.proxies.get(vf.proxy)
            host_path = await self.client.mount_path(proxy, vf.volume, vf.vfid)
            read_only = request.wants_read_only or access.permission == "ro"
            reason = "asked" if request.wants_read_only else ("shared read-only" if read_only else "")
            if not read_only and vf.quota_bytes is not None:
                used = int((await self.client.usage(proxy, vf.volume, vf.vfid)).get("bytes", 0))
                if used >= vf.quota_bytes:
                    read_only = True
                    reason = (f"vfolder {vf.name} is over quota ({format_size(used)} of "
                              f"{format_size(vf.quota_bytes)}): mounted read-only")
                    notes.append(reason)
            mounts.append({
                "name": vf.name,
                "owner": owner,  # which vfolder of that name was mounted (own, a project's, shared)
                "owner_kind": vf.owner_kind,
                "vfolder_id": vf.id,
                "host": vf.host,
                "vfid": vf.vfid,
                "host_path": host_path,
                "container_path": request.container_path,
                "read_only": read_only,
                "read_only_reason": reason,
                "permission": access.permission,
            })
        return mounts, notes
