"""A blocking facade over ``AsyncCorralClient`` for scripts and notebooks.

The async client runs on a private event loop in a daemon thread, so this
works even where a loop is already running (Jupyter)::

    with CorralClient() as client:
        session = client.create_session(resources={"cpu": "1"})
        client.wait_for_status(session.id, {"RUNNING"}, timeout=120)
        print(client.execute_collect(session.id, "print(6 * 7)").stdout)
        client.destroy_session(session.id)

Both clients have the same public methods (a unit test keeps them in step), except
``ASYNC_ONLY``: what hands out an asyncio object (a terminal, a tunnel, a
``StorageClient``) has no blocking form; ``upload``/``download`` cover the files.
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from .api import AsyncCorralClient, ExecutionResult
from .config import ClientConfig
from .models import (
    Agent, GroupQueue, Health, Image, Project, ResourceGroup, ResourcePolicy, Session, SessionPage, SessionService, SshKey,
    StatusChange, UsageReport, Vfolder, VfolderToken, WhoAmI,
)
from .ssh_setup import SshFiles

T = TypeVar("T")

# Methods of AsyncCorralClient with no blocking twin, and why.
ASYNC_ONLY: dict[str, str] = {
    "terminal": "an async context manager around a live websocket (use `corral terminal`, or AsyncCorralClient)",
    "open_tunnel": "an async Tunnel over a websocket (use `corral app`/`corral ssh`, or AsyncCorralClient)",
    "storage": "returns the async StorageClient; use upload()/download() here",
}


class CorralClient:
    """Same methods as ``AsyncCorralClient``, blocking; iterators become generators."""

    def __init__(self, config: ClientConfig | None = None, **client_options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="corral-client", daemon=True)
        self._thread.start()
        try:
            self._async = AsyncCorralClient(config, **client_options)
        except BaseException:
            self._stop_loop()
            raise
        self._closed = False

    @property
    def config(self) -> ClientConfig:
        return self._async.config

    @property
    def endpoint(self) -> str:
        return self._async.endpoint

    def __enter__(self) -> "CorralClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self._async.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def _call(self, coro: Awaitable[T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def _iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._call(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and not self._loop.is_closed():
                self._call(aclose())

    # -- API, mirroring AsyncCorralClient ---------------------------------

    def health(self) -> Health:
        return self._call(self._async.health())

    def whoami(self) -> WhoAmI:
        return self._call(self._async.whoami())

    def create_session(
        self,
        *,
        image: str | None = None,
        type: str = "interactive",
        name: str | None = None,
        command: str | Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        resources: Mapping[str, str | int | float] | None = None,
        mounts: Sequence[str] | None = None,
        resource_group: str | None = None,
        project: str | None = None,
        priority: int | None = None,
        cluster_size: int = 1,
        cluster_mode: str = "single-node",
    ) -> Session:
        return self._call(
            self._async.create_session(
                image=image, type=type, name=name, command=command, env=env, resources=resources, mounts=mounts,
                resource_group=resource_group, project=project, priority=priority, cluster_size=cluster_size,
                cluster_mode=cluster_mode,
            )
        )

    def list_sessions(
        self,
        *,
        status: Iterable[str] | None = None,
        all: bool = False,
        limit: int | None = None,
        cursor: str | None = None,
        all_users: bool = False,
    ) -> SessionPage:
        return self._call(
            self._async.list_sessions(status=status, all=all, limit=limit, cursor=cursor, all_users=all_users)
        )

    def iter_session_pages(
        self, *, status: Iterable[str] | None = None, all: bool = False, page_size: int = 100,
        all_users: bool = False,
    ) -> Iterator[SessionPage]:
        return self._iterate(
            self._async.iter_session_pages(status=status, all=all, page_size=page_size, all_users=all_users)
        )

    def iter_sessions(
        self, *, status: Iterable[str] | None = None, all: bool = False, page_size: int = 100,
        all_users: bool = False,
    ) -> Iterator[Session]:
        return self._iterate(
            self._async.iter_sessions(status=status, all=all, page_size=page_size, all_users=all_users)
        )

    def get_session(self, ref: str) -> Session:
        return self._call(self._async.get_session(ref))

    def destroy_session(self, ref: str) -> Session:
        return self._call(self._async.destroy_session(ref))

    def logs(self, ref: str, *, kernel: str | None = None) -> str:
        return self._call(self._async.logs(ref, kernel=kernel))

    def follow_logs(self, ref: str, *, kernel: str | None = None) -> Iterator[str]:
        return self._iterate(self._async.follow_logs(ref, kernel=kernel))

    def interrupt(self, ref: str, *, kernel: str | None = None) -> bool:
        return self._call(self._async.interrupt(ref, kernel=kernel))

    def execute(self, ref: str, code: str, *, kernel: str | None = None) -> Iterator[dict[str, Any]]:
        return self._iterate(self._async.execute(ref, code, kernel=kernel))

    def execute_collect(self, ref: str, code: str, *, kernel: str | None = None) -> ExecutionResult:
        return self._call(self._async.execute_collect(ref, code, kernel=kernel))

    def watch_session(self, ref: str, *, progress: bool = False) -> Iterator[StatusChange]:
        return self._iterate(self._async.watch_session(ref, progress=progress))

    def wait_for_status(
        self,
        ref: str,
        statuses: Iterable[str],
        timeout: float | None = None,
        *,
        poll_interval: float = 0.5,
        on_progress: Callable[[StatusChange], None] | None = None,
    ) -> Session:
        return self._call(
            self._async.wait_for_status(ref, statuses, timeout, poll_interval=poll_interval, on_progress=on_progress)
        )

    # -- services, SSH keys --------------------------------------------------------

    def services(self, ref: str) -> list[SessionService]:
        return self._call(self._async.services(ref))

    def start_service(self, ref: str, name: str, *, wait_s: float = 0) -> SessionService:
        return self._call(self._async.start_service(ref, name, wait_s=wait_s))

    def app_url(self, ref: str, name: str) -> str:
        return self._call(self._async.app_url(ref, name))

    def ssh_keys(self) -> list[SshKey]:
        return self._call(self._async.ssh_keys())

    def add_ssh_key(self, public_key: str, name: str = "") -> SshKey:
        return self._call(self._async.add_ssh_key(public_key, name))

    def remove_ssh_key(self, ref: str) -> SshKey:
        return self._call(self._async.remove_ssh_key(ref))

    def ensure_ssh_key(self, files: SshFiles | None = None) -> str:
        return self._call(self._async.ensure_ssh_key(files))

    def ssh_sessions(self, refs: Sequence[str] | None, files: SshFiles) -> list[Session]:
        return self._call(self._async.ssh_sessions(refs, files))

    def ssh_config(
        self, refs: Sequence[str] | None = None, *, files: SshFiles | None = None, proxy: str | None = None,
    ) -> str:
        return self._call(self._async.ssh_config(refs, files=files, proxy=proxy))

    def list_agents(self) -> list[Agent]:
        return self._call(self._async.list_agents())

    def list_images(self) -> list[Image]:
        return self._call(self._async.list_images())

    # -- vfolders (file transfers: ``upload``/``download``; async: ``storage`` / ``StorageClient``) --

    def create_vfolder(
        self, name: str, *, quota: int | str | None = None, host: str | None = None, project: str | None = None
    ) -> Vfolder:
        return self._call(self._async.create_vfolder(name, quota=quota, host=host, project=project))

    def list_vfolders(self, *, trashed: bool = False) -> list[Vfolder]:
        return self._call(self._async.list_vfolders(trashed=trashed))

    def get_vfolder(self, ref: str, *, usage: bool = True) -> Vfolder:
        return self._call(self._async.get_vfolder(ref, usage=usage))

    def update_vfolder(
        self, ref: str, *, name: str | None = None, quota: int | str | None = None, unlimited: bool = False
    ) -> Vfolder:
        return self._call(self._async.update_vfolder(ref, name=name, quota=quota, unlimited=unlimited))

    def rename_vfolder(self, ref: str, new_name: str) -> Vfolder:
        return self._call(self._async.rename_vfolder(ref, new_name))

    def delete_vfolder(self, ref: str) -> Vfolder:
        return self._call(self._async.delete_vfolder(ref))

    def restore_vfolder(self, ref: str) -> Vfolder:
        return self._call(self._async.restore_vfolder(ref))

    def purge_vfolder(self, ref: str) -> Vfolder:
        return self._call(self._async.purge_vfolder(ref))

    def share_vfolder(self, ref: str, username: str, permission: str = "ro") -> Vfolder:
        return self._call(self._async.share_vfolder(ref, username, permission))

    def unshare_vfolder(self, ref: str, username: str) -> None:
        return self._call(self._async.unshare_vfolder(ref, username))

    def vfolder_token(self, ref: str, permission: str = "ro") -> VfolderToken:
        return self._call(self._async.vfolder_token(ref, permission))

    def upload(self, ref: str, local_path: str, remote_path: str = "", **options: Any) -> Any:
        """Upload a file or a directory tree into the vfolder (resumes an interrupted upload)."""
        return self._call(self._async.upload(ref, local_path, remote_path, **options))

    def download(self, ref: str, remote_path: str, local_path: str, **options: Any) -> Any:
        """Download a file, or a directory (unpacked into ``local_path``)."""
        return self._call(self._async.download(ref, remote_path, local_path, **options))

    def list_storage_hosts(self) -> list[dict[str, Any]]:
        return self._call(self._async.list_storage_hosts())

    def create_user(self, username: str, role: str = "user", password: str | None = None) -> dict[str, Any]:
        return self._call(self._async.create_user(username, role, password))

    def list_users(self) -> list[dict[str, Any]]:
        return self._call(self._async.list_users())

    def set_password(self, username: str, password: str, current_password: str | None = None) -> None:
        return self._call(self._async.set_password(username, password, current_password))

    def disable_user(self, username: str) -> dict[str, Any]:
        return self._call(self._async.disable_user(username))

    def enable_user(self, username: str) -> dict[str, Any]:
        return self._call(self._async.enable_user(username))

    def update_user(self, username: str, **changes: Any) -> dict[str, Any]:
        return self._call(self._async.update_user(username, **changes))

    # -- resource groups and policies ------------------------------------------------

    def usage(self, *, first_day: str | None = None, last_day: str | None = None, by: str = "user",
              group: str | None = None, user: str | None = None, project: str | None = None) -> UsageReport:
        return self._call(self._async.usage(first_day=first_day, last_day=last_day, by=by, group=group, user=user,
                                            project=project))

    def usage_csv(self, *, first_day: str | None = None, last_day: str | None = None, by: str = "user",
                  group: str | None = None, user: str | None = None, project: str | None = None) -> str:
        return self._call(self._async.usage_csv(first_day=first_day, last_day=last_day, by=by, group=group,
                                                user=user, project=project))

    def queue(self, group: str | None = None) -> list[GroupQueue]:
        return self._call(self._async.queue(group))

    def list_resource_groups(self) -> list[ResourceGroup]:
        return self._call(self._async.list_resource_groups())

    def get_resource_group(self, name: str) -> ResourceGroup:
        return self._call(self._async.get_resource_group(name))

    def create_resource_group(self, name: str, **settings: Any) -> ResourceGroup:
        return self._call(self._async.create_resource_group(name, **settings))

    def update_resource_group(self, name: str, **changes: Any) -> ResourceGroup:
        return self._call(self._async.update_resource_group(name, **changes))

    def delete_resource_group(self, name: str) -> ResourceGroup:
        return self._call(self._async.delete_resource_group(name))

    def list_resource_policies(self) -> list[ResourcePolicy]:
        return self._call(self._async.list_resource_policies())

    def get_resource_policy(self, name: str) -> ResourcePolicy:
        return self._call(self._async.get_resource_policy(name))

    def create_resource_policy(self, name: str, **limits: Any) -> ResourcePolicy:
        return self._call(self._async.create_resource_policy(name, **limits))

    def update_resource_policy(self, name: str, **changes: Any) -> ResourcePolicy:
        return self._call(self._async.update_resource_policy(name, **changes))

    def delete_resource_policy(self, name: str) -> ResourcePolicy:
        return self._call(self._async.delete_resource_policy(name))

    # -- projects ----------------------------------------------------------------

    def create_project(self, name: str, description: str = "") -> Project:
        return self._call(self._async.create_project(name, description))

    def list_projects(self) -> list[Project]:
        return self._call(self._async.list_projects())

    def get_project(self, name: str) -> Project:
        return self._call(self._async.get_project(name))

    def add_project_member(self, name: str, username: str, role: str = "member") -> Project:
        return self._call(self._async.add_project_member(name, username, role))

    def set_project_member_role(self, name: str, username: str, role: str) -> Project:
        return self._call(self._async.set_project_member_role(name, username, role))

    def update_project(self, name: str, **changes: Any) -> Project:
        return self._call(self._async.update_project(name, **changes))

    def remove_project_member(self, name: str, username: str) -> Project | None:
        return self._call(self._async.remove_project_member(name, username))

