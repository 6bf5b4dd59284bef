"""``corral vfolder …``: persistent folders, their sharing, and file transfers."""
from __future__ import annotations

import contextlib
import os
import posixpath
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from corral.common.errors import AuthenticationFailed, InvalidRequest, NotFound
from corral.common.slots import format_size, parse_size

from ..api import AsyncCorralClient
from ..models import Vfolder
from ..storage import StorageClient, UploadResult
from .context import call_api, cli_state, note, run_async
from .output import console, print_json
from .options import json_option

T = TypeVar("T")
TOKEN_REFRESHES = 3


@click.group("vfolder")
def vfolder_group() -> None:
    """Persistent folders: create, share, mount (`--mount NAME`), upload and download."""


def _client() -> AsyncCorralClient:
    return cli_state().client()


def _size_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_size(value)
    except InvalidRequest as exc:
        raise click.BadParameter(exc.detail) from None
    return value


def _quota_text(vf: Vfolder) -> str:
    return format_size(vf.quota_bytes) if vf.quota_bytes is not None else "unlimited"


def _vfolder_table(vfolders: list[Vfolder]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "ID", "OWNER", "PERM", "HOST", "QUOTA", "SHARED WITH", "CREATED"):
        table.add_column(column)
    for vf in vfolders:
        owner = vf.owner if vf.owner_kind == "user" else f"project {vf.owner}"
        shared = ", ".join(f"{s.get('username')} ({s.get('permission')})" for s in vf.shared_with) or "-"
        created = vf.created_at.astimezone().strftime("%Y-%m-%d %H:%M") if vf.created_at else "-"
        table.add_row(escape(vf.name), vf.id[:8], escape(owner), vf.permission, vf.host, _quota_text(vf), shared, created)
    return table


# -- the vfolders themselves -------------------------------------------------------------


@vfolder_group.command("create")
@click.argument("name")
@click.option("--quota", callback=lambda c, p, v: _size_or_none(v), default=None, help="Size limit, e.g. 10g.")
@click.option("--host", default=None, metavar="PROXY:VOLUME", help="Where to create it (see `corral vfolder hosts`).")
@click.option("--project", default=None, help="Owned by this project (you must be a member; see `corral project ls`).")
@json_option
def create_command(name: str, quota: str | None, host: str | None, project: str | None, as_json: bool) -> None:
    """Create a vfolder NAME."""
    vf = call_api(lambda client: client.create_vfolder(name, quota=quota, host=host, project=project))
    if as_json:
        print_json(vf.raw)
    else:
        click.echo(f"vfolder {vf.name} ({vf.id}) created on {vf.host}, quota {_quota_text(vf)}")


@vfolder_group.command("ls")
@click.option("--trash", is_flag=True, help="List your vfolders in the trash instead.")
@json_option
def ls_command(trash: bool, as_json: bool) -> None:
    """Your vfolders and those shared with you."""
    vfolders = call_api(lambda client: client.list_vfolders(trashed=trash))
    if as_json:
        print_json([vf.raw for vf in vfolders])
    elif not vfolders:
        note("the trash is empty" if trash else "no vfolders (create one with `corral vfolder create NAME`)")
    else:
        console().print(_vfolder_table(vfolders))


@vfolder_group.command("info")
@click.argument("name")
@json_option
def info_command(name: str, as_json: bool) -> None:
    """Owner, host, permission, shares, usage and quota."""
    vf = call_api(lambda client: client.get_vfolder(name))
    if as_json:
        print_json(vf.raw)
        return
    raw = vf.raw
    usage = raw.get("usage") or {}
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("name", escape(vf.name))
    grid.add_row("id", vf.id)
    grid.add_row("owner", escape(vf.owner if vf.owner_kind == "user" else f"project {vf.owner}"))
    grid.add_row("host", vf.host)
    grid.add_row("your permission", vf.permission)
    if usage:
        line = f"{format_size(int(usage.get('bytes') or 0))} in {usage.get('files', 0)} files, {usage.get('dirs', 0)} dirs"
        grid.add_row("usage", line + ("  [bold red]over quota: mounts are read-only[/]" if raw.get("over_quota") else ""))
    elif raw.get("usage_error"):
        grid.add_row("usage", f"[red]unknown[/] ({escape(str(raw['usage_error']))})")
    grid.add_row("quota", _quota_text(vf))
    if vf.is_owner:
        shared = ", ".join(f"{s.get('username')} ({s.get('permission')})" for s in vf.shared_with) or "nobody"
        grid.add_row("shared with", escape(shared))
    grid.add_row("created", vf.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if vf.created_at else "-")
    console().print(grid)


@vfolder_group.command("rename")
@click.argument("name")
@click.argument("new_name")
def rename_command(name: str, new_name: str) -> None:
    """Rename a vfolder (sessions mount it by its new name)."""
    vf = call_api(lambda client: client.rename_vfolder(name, new_name))
    click.echo(f"vfolder {name} is now {vf.name}")


@vfolder_group.command("quota")
@click.argument("name")
@click.argument("size")
def quota_command(name: str, size: str) -> None:
    """Set the quota: a SIZE like 10g, or `unlimited`."""
    unlimited = size.lower() in ("unlimited", "none", "0")
    if not unlimited:
        _size_or_none(size)

    vf = call_api(lambda client: client.update_vfolder(name, quota=None if unlimited else size, unlimited=unlimited))
    click.echo(f"vfolder {vf.name}: quota {_quota_text(vf)}")


@vfolder_group.command("rm")
@click.argument("names", metavar="NAME…", nargs=-1, required=True)
def rm_command(names: tuple[str, ...]) -> None:
    """Move vfolders to the trash (`restore` brings them back, `purge` deletes their files)."""
    async def trash() -> list[Vfolder]:
        async with _client() as client:
            return [await client.delete_vfolder(name) for name in names]

    for vf in run_async(trash()):
        click.echo(f"vfolder {vf.name} ({vf.id[:8]}) moved to the trash")


@vfolder_group.command("restore")
@click.argument("name")
def restore_command(name: str) -> None:
    """Bring a vfolder back from the trash."""
    vf = call_api(lambda client: client.restore_vfolder(name))
    click.echo(f"vfolder {vf.name} ({vf.id[:8]}) restored")


@vfolder_group.command("purge")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
def purge_command(name: str, yes: bool) -> None:
    """Delete a vfolder in the trash and all its files, for good."""
    if not yes:
        click.confirm(f"Delete vfolder {name} and all its files for good?", abort=True, err=True)

    vf = call_api(lambda client: client.purge_vfolder(name))
    click.echo(f"vfolder {vf.name} ({vf.id[:8]}) purged")


@vfolder_group.command("share")
@click.argument("name")
@click.argument("username")
@click.option("--rw", "permission", flag_value="rw", help="Read and write.")
@click.option("--ro", "permission", flag_value="ro", default=True, help="Read only (default).")
def share_command(name: str, username: str, permission: str) -> None:
    """Share a vfolder with another user (read-only unless --rw)."""
    vf = call_api(lambda client: client.share_vfolder(name, username, permission))
    click.echo(f"vfolder {vf.name} shared with {username} ({permission})")


@vfolder_group.command("unshare")
@click.argument("name")
@click.argument("username")
def unshare_command(name: str, username: str) -> None:
    """Stop sharing a vfolder with a user (or, as that user, leave it)."""
    async def unshare() -> None:
        async with _client() as client:
            await client.unshare_vfolder(name, username)

    run_async(unshare())
    click.echo(f"vfolder {name} is no longer shared with {username}")


@vfolder_group.command("hosts")
@json_option
def hosts_command(as_json: bool) -> None:
    """Storage hosts (PROXY:VOLUME) new vfolders can go to."""
    hosts = call_api(lambda client: client.list_storage_hosts())
    if as_json:
        print_json(hosts)
        return
    table = Table(box=None, header_style="bold")
    for column in ("HOST", "BACKEND", "CAPABILITIES", "DEFAULT"):
        table.add_column(column)
    for host in hosts:
        if host.get("error"):
            table.add_row(host["host"], f"[red]unreachable[/]: {escape(str(host['error']))}", "", "")
        else:
            table.add_row(host["host"], str(host.get("backend")), ", ".join(host.get("capabilities") or []),
                          "yes" if host.get("default") else "")
    console().print(table)


# -- files --------------------------------------------------------------------------


class _Storage:
    """A StorageClient for one vfolder whose token is renewed when it expires mid-transfer."""

    def __init__(self, client: AsyncCorralClient, ref: str, permission: str, **options: Any) -> None:
        self.client, self.ref, self.permission, self.options = client, ref, permission, options
        self.storage: StorageClient | None = None

    async def get(self) -> StorageClient:
        if self.storage is None:
            self.storage = await self.client.storage(self.ref, self.permission, **self.options)
        return self.storage

    async def renew(self) -> StorageClient:
        if self.storage is not None:
            await self.storage.close()
            self.storage = None
        return await self.get()

    async def call(self, action: Callable[[StorageClient], Awaitable[T]]) -> T:
        for attempt in range(TOKEN_REFRESHES + 1):
            try:
                return await action(await self.get())
            except AuthenticationFailed as exc:
                if attempt == TOKEN_REFRESHES or "expired" not in str(exc):
                    raise
                await self.renew()  # resumable work continues where it stopped
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self.storage is not None:
            await self.storage.close()


@contextlib.asynccontextmanager
async def _storage(ref: str, permission: str, **options: Any) -> AsyncIterator[_Storage]:
    async with _client() as client:
        holder = _Storage(client, ref, permission, **options)
        try:
            yield holder
        finally:
            await holder.close()


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


@contextlib.contextmanager
def _transfer_bar(description: str, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr fed by the (done, total) callbacks of StorageClient."""
    if not enabled:
        yield lambda done, total: None
        return
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
        TransferSpeedColumn(), TimeRemainingColumn(), console=_stderr(), transient=False,
    )
    task: TaskID = progress.add_task(escape(description), total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total or None)

    with progress:
        yield update


def _join(remote_dir: str, name: str) -> str:
    return posixpath.join(remote_dir, name) if remote_dir else name


@vfolder_group.command("upload")
@click.argument("name")
@click.argument("sources", metavar="LOCAL…", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--to", "remote_dir", default="", metavar="DIR", help="Directory in the vfolder (default: its root).")
@click.option("--chunk-size", callback=lambda c, p, v: _size_or_none(v), default=None,
              help="Upload chunk (default 32m): at most this much is re-sent after an interruption.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@json_option
def upload_command(name: str, sources: tuple[str, ...], remote_dir: str, chunk_size: str | None,
                   no_progress: bool, as_json: bool) -> None:
    """Upload files and directories into vfolder NAME (rsync's trailing-slash rule).

    \b
    upload data ./dir               -> data:/dir/…
    upload data ./dir/              -> data:/… (the contents of dir)
    upload data ./dir --to sub      -> data:/sub/dir/…
    upload data ./dir/ --to sub     -> data:/sub/…
    upload data ./file.txt          -> data:/file.txt

    Run the same command again after an interruption: each file continues
    where it stopped.
    """
    options: dict[str, Any] = {}
    if chunk_size:
        options["chunk_size"] = parse_size(chunk_size)
    remote_dir = remote_dir.strip("/")

    async def upload() -> list[UploadResult]:
        results: list[UploadResult] = []
        async with _storage(name, "rw", **options) as storage:
            for given in sources:
                source = Path(given)
                # rsync: "dir/" (or "dir/.") means its contents, "dir" the directory itself.
                contents = source.is_dir() and (given.endswith(("/", os.sep)) or given.endswith((f"{os.sep}.", "/.")) or given == ".")
                remote = remote_dir if contents else _join(remote_dir, source.resolve().name)
                with _transfer_bar(f"{given} → {name}:/{remote}", not no_progress and not as_json) as bar:
                    if source.is_dir():
                        results += await storage.call(lambda s: s.upload_tree(source, remote, progress=bar))
                    else:
                        results.append(await storage.call(lambda s: s.upload_file(source, remote, progress=bar)))
        return results

    results = run_async(upload())
    if as_json:
        print_json([
            {"remote_path": r.remote_path, "size": r.size, "resumed_from": r.resumed_from, "bytes_sent": r.bytes_sent}
            for r in results
        ])
        return
    for result in results:
        if result.resumed_from:
            note(f"resumed {result.remote_path} at {format_size(result.resumed_from)} of {format_size(result.size)}")
    total = sum(r.size for r in results)
    if not results:
        click.echo(f"{name} is up to date: no new or changed files (same size and modification time)")
        return
    click.echo(f"uploaded {len(results)} file{'s' if len(results) != 1 else ''} ({format_size(total)}) to {name}")


@vfolder_group.command("download")
@click.argument("name", metavar="VFOLDER[:PATH]")
@click.argument("args", metavar="[PATH] DEST", nargs=-1)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def download_command(name: str, args: tuple[str, ...], no_progress: bool) -> None:
    """Download a vfolder, or a file or directory in it, like scp/cp.

    \b
    corral vfolder download data DEST          the whole vfolder
    corral vfolder download data PATH DEST     PATH (file or directory) in it
    corral vfolder download data:PATH DEST     the same
    corral vfolder download data[:PATH]        into ./data (or ./BASENAME of PATH)

    DEST that is an existing directory gets the download inside it
    (DEST/NAME); otherwise DEST is created, and its parent must exist.
    An interrupted file download continues from DEST.part when run again.
    """
    name, _, remote = name.partition(":")
    if len(args) > 2 or (remote and len(args) > 1):
        raise click.UsageError("expected VFOLDER DEST, VFOLDER PATH DEST or VFOLDER:PATH DEST")
    if len(args) == 2:
        remote, local = args[0], Path(args[1])
    else:
        local = Path(args[0]) if args else None
    remote = remote.strip("/")
    if local is not None and not local.is_dir() and not local.parent.is_dir():
        raise NotFound(f"{local.parent}: no such directory (the destination's parent must exist; DEST itself is created)")

    async def download() -> str:
        async with _storage(name, "ro") as storage:
            info = await storage.call(lambda s: s.stat(remote)) if remote else {"type": "dir"}
            base = posixpath.basename(remote) or name
            target = Path(base) if local is None else (local / base if local.is_dir() else local)
            with _transfer_bar(f"{name}:{remote or '/'} → {target}", not no_progress) as bar:
                if info.get("type") == "dir":
                    received = await storage.call(lambda s: s.download_dir(remote, target, progress=bar))
                    return f"downloaded {name}:{remote or '/'} into {target}/ ({format_size(received)} archive)"
                result = await storage.call(lambda s: s.download_file(remote, target, progress=bar))
                resumed = f", resumed at {format_size(result.resumed_from)}" if result.resumed_from else ""
                return f"downloaded {name}:{remote} to {target} ({format_size(result.size)}{resumed})"

    click.echo(run_async(download()))


def _mtime(value: Any) -> str:
    try:
        return datetime.fromtimestamp(float(value), timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError):
        return "-"


@vfolder_group.command("files")
@click.argument("name")
@click.argument("path", default="")
@click.option("--recursive", "-r", is_flag=True, help="Everything below PATH (parallel walk on the proxy).")
@json_option
def files_command(name: str, path: str, recursive: bool, as_json: bool) -> None:
    """List the files in vfolder NAME (under PATH)."""
    path = path.strip("/")

    async def fetch() -> list[dict[str, Any]]:
        async with _storage(name, "ro") as storage:
            if recursive:
                async def walk(s: StorageClient) -> list[dict[str, Any]]:
                    return [e async for e in s.walk(path)]

                return sorted(await storage.call(walk), key=lambda e: e["path"])
            return await storage.call(lambda s: s.list(path))

    entries = run_async(fetch())
    if as_json:
        print_json(entries)
        return
    if not entries:
        note(f"{name}:{path or '/'} is empty")
        return
    table = Table(box=None, header_style="bold")
    for column in ("TYPE", "SIZE", "MODIFIED", "NAME"):
        table.add_column(column, justify="right" if column == "SIZE" else "left")
    for entry in entries:
        label = entry.get("path") or entry.get("name", "")
        if entry.get("type") == "dir":
            label += "/"
        if entry.get("target"):
            label += f" -> {entry['target']}"
        size = format_size(int(entry.get("size") or 0)) if entry.get("type") == "file" else "-"
        table.add_row(str(entry.get("type")), size, _mtime(entry.get("mtime")), escape(label))
    console().print(table)


@vfolder_group.command("mkdir")
@click.argument("name")
@click.argument("path")
@click.option("--parents", "-p", is_flag=True, help="Make parent directories; no error if it exists.")
def mkdir_command(name: str, path: str, parents: bool) -> None:
    """Make directory PATH in vfolder NAME."""
    async def mkdir() -> None:
        async with _storage(name, "rw") as storage:
            await storage.call(lambda s: s.mkdir(path.strip("/"), parents=parents, exist_ok=parents))

    run_async(mkdir())


@vfolder_group.command("mv")
@click.argument("name")
@click.argument("src")
@click.argument("dst")
@click.option("--force", "-f", is_flag=True, help="Replace DST if it exists.")
def mv_command(name: str, src: str, dst: str, force: bool) -> None:
    """Move or rename SRC to DST inside vfolder NAME."""
    async def move() -> None:
        async with _storage(name, "rw") as storage:
            await storage.call(lambda s: s.move(src.strip("/"), dst.strip("/"), overwrite=force))

    run_async(move())


@vfolder_group.command("rm-file")
@click.argument("name")
@click.argument("paths", metavar="PATH…", nargs=-1, required=True)
@click.option("--recursive", "-r", is_flag=True, help="Directories with their contents.")
def rm_file_command(name: str, paths: tuple[str, ...], recursive: bool) -> None:
    """Delete files (or, with -r, directories) inside vfolder NAME."""
    async def delete() -> None:
        async with _storage(name, "rw") as storage:
            for path in paths:
                await storage.call(lambda s: s.delete(path.strip("/"), recursive=recursive))

    run_async(delete())
