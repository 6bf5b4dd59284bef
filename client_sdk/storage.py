"""Async client for the storage proxy's client API (one vfolder, one JWT).

    async with StorageClient(proxy_url, token) as storage:
        await storage.upload_file("data.bin", "datasets/data.bin", progress=bar)
        await storage.download_file("datasets/data.bin", "copy.bin")

The token (from the manager) names the vfolder; ``vfid`` is read from it unless
given. Uploads use tus 1.0.0 in chunks with a sha1 per chunk and remember their
upload URL under ``~/.cache/corral/uploads``: running the same upload again
continues where it stopped, re-sending at most the one chunk that was in flight.
Downloads resume from ``<file>.part`` with ``Range`` + ``If-Range``.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, AsyncIterator, Callable

import aiohttp
from yarl import URL

from corral.common.errors import CorralError, NotFound, error_from_problem

from .upload_state import UploadKey, UploadStateStore

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
TUS_VERSION = "1.0.0"
DEFAULT_CHUNK_SIZE = 32 << 20
SEND_PIECE = 1 << 20
DOWNLOAD_BLOCK = 4 << 20


@dataclass(frozen=True)
class UploadResult:
    remote_path: str
    size: int
    upload_url: str
    resumed_from: int  # offset the server already had when this call started
    bytes_sent: int  # body bytes this call put on the wire (incl. chunks that failed)


@dataclass(frozen=True)
class DownloadResult:
    local_path: Path
    size: int
    resumed_from: int


@dataclass
class TreeListing:
    entries: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)


def vfid_from_token(token: str) -> str:
    """Read (without verifying: the proxy does that) the vfolder id a token is for."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return str(json.loads(base64.urlsafe_b64decode(payload))["vfid"])
    except (IndexError, ValueError, KeyError) as exc:
        raise ValueError("not a vfolder token") from exc


async def _raise_for_problem(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    body = await response.read()
    doc: dict[str, Any]
    try:
        parsed = json.loads(body) if body else {}
        doc = parsed if isinstance(parsed, dict) else {}
    except ValueError:
        doc = {}
    if not doc:
        doc = {"detail": body.decode(errors="replace")[:500] or f"HTTP {response.status}"}
    raise error_from_problem(doc, response.status)


class StorageClient:
    def __init__(
        self,
        proxy_url: str,
        token: str,
        *,
        vfid: str | None = None,
        session: aiohttp.ClientSession | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        checksum: str | None = "sha1",
        state_store: UploadStateStore | None = None,
    ) -> None:
        self.proxy_url = proxy_url.rstrip("/")
        self.token = token
        self.vfid = vfid or vfid_from_token(token)
        self.chunk_size = chunk_size
        self.checksum = checksum
        self.state = state_store or UploadStateStore()
        self._session = session
        self._own_session = session is None

    # -- plumbing ------------------------------------------------------------------

    async def __aenter__(self) -> "StorageClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300),
                auto_decompress=False,
            )
        return self._session

    def _url(self, tail: str) -> str:
        return f"{self.proxy_url}/client/v1/vfolders/{self.vfid}/{tail}"

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}

    async def _json(self, method: str, tail: str, *, params: dict[str, str] | None = None, body: Any = None) -> Any:
        async with self.session.request(
            method, self._url(tail), params=params, json=body, headers=self._headers()
        ) as response:
            await _raise_for_problem(response)
            if response.status == 204:
                return None
            return await response.json(content_type=None)

    # -- files ------------------------------------------------------------------------

    async def list_page(self, path: str = "", *, limit: int = 1000, cursor: str | None = None) -> dict[str, Any]:
        params = {"path": path, "limit": str(limit)}
        if cursor:
            params["cursor"] = cursor
        return await self._json("GET", "files", params=params)

    async def list(self, path: str = "", *, page_size: int = 1000) -> list[dict[str, Any]]:
        """All entries of a directory (follows pagination)."""
        entries: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self.list_page(path, limit=page_size, cursor=cursor)
            entries.extend(page["entries"])
            cursor = page.get("next_cursor")
            if not cursor:
                return entries

    async def stat(self, path: str) -> dict[str, Any]:
        return await self._json("GET", "stat", params={"path": path})

    async def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        await self._json("POST", "mkdir", body={"path": path, "parents": parents, "exist_ok": exist_ok})

    async def move(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        await self._json("POST", "move", body={"src": src, "dst": dst, "overwrite": overwrite})

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        await self._json("DELETE", "files", params={"path": path, "recursive": "1" if recursive else "0"})

    # -- metadata walks -------------------------------------------------------------------

    async def _ndjson(self, tail: str, params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        async with self.session.get(self._url(tail), params=params, headers=self._headers(Accept="application/x-ndjson")) as response:
            await _raise_for_problem(response)
            async for raw in response.content:
                line = raw.strip()
                if not line:
                    continue
                doc = json.loads(line)
                if doc.get("type") == "error":
                    raise error_from_problem(doc.get("problem", {}), int(doc.get("problem", {}).get("status", 500)))
                yield doc

    async def usage(self, path: str = "", *, progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Totals (files, dirs, bytes, disk_bytes, entries…) of ``path``; ``progress`` gets running totals."""
        if progress is None:
            return await self._json("GET", "usage", params={"path": path})
        async for doc in self._ndjson("usage", {"path": path, "progress": "1"}):
            if doc["type"] == "progress":
                progress(doc)
            elif doc["type"] == "result":
                return doc
        raise CorralError("usage stream ended without a result")

    async def walk(
        self,
        path: str = "",
        *,
        progress: Callable[[dict[str, Any]], None] | None = None,
        totals: Callable[[dict[str, Any]], None] | None = None,
        stat: bool = True,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every entry below ``path`` as {path, type, size, mtime}, unordered (parallel walk).

        ``progress`` gets running totals while the walk goes on, ``totals`` the final ones.
        ``stat=False`` lists names and types only (sizes 0): much faster on a NAS.
        """
        params = {"path": path, "progress": "1" if progress else "0", "stat": "1" if stat else "0"}
        async for doc in self._ndjson("tree", params):
            if doc["type"] == "entries":
                for rel, kind, size, mtime in doc["entries"]:
                    yield {"path": rel, "type": kind, "size": size, "mtime": mtime}
            elif doc["type"] == "progress" and progress is not None:
                progress(doc)
            elif doc["type"] == "result" and totals is not None:
                totals(doc)

    async def tree(
        self, path: str = "", *, progress: Callable[[dict[str, Any]], None] | None = None, stat: bool = True
    ) -> TreeListing:
        """The whole recursive listing in memory, with the walk's totals."""
        listing = TreeListing()
        async for entry in self.walk(path, progress=progress, totals=listing.totals.update, stat=stat):
            listing.entries.append(entry)
        return listing

    # -- uploads ----------------------------------------------------------------------

    async def _tus_create(self, remote_path: str, size: int, mtime_ns: int | None = None) -> str:
        fields = [("path", remote_path), ("filename", PurePosixPath(remote_path).name)]
        if mtime_ns is not None:
            fields.append(("mtime_ns", str(mtime_ns)))
        metadata = ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in fields)
        headers = self._headers(**{"Tus-Resumable": TUS_VERSION, "Upload-Length": str(size), "Upload-Metadata": metadata})
        async with self.session.post(self._url("uploads"), headers=headers) as response:
            await _raise_for_problem(response)
            location = response.headers["Location"]
        return str(response.url.join(URL(location)))

    async def _tus_offset(self, upload_url: str) -> int | None:
        """The server's offset, or None if the upload is gone (expired, finished long ago)."""
        async with self.session.head(upload_url, headers=self._headers(**{"Tus-Resumable": TUS_VERSION})) as response:
            if response.status in (404, 410):
                return None
            await _raise_for_problem(response)
            return int(response.headers["Upload-Offset"])

    async def upload_file(
        self,
        local_path: str | os.PathLike[str],
        remote_path: str,
        *,
        progress: Progress | None = None,
        resume: bool = True,
    ) -> UploadResult:
        """Upload one file; resumes a previous interrupted upload of the same file."""
        path = Path(local_path)
        key = UploadKey.for_file(path, proxy_url=self.proxy_url, vfid=self.vfid, remote_path=remote_path)
        size = key.size
        upload_url: str | None = None
        offset: int | None = None
        record = self.state.get(key) if resume else None
        if record is not None:
            offset = await self._tus_offset(record.upload_url)
            if offset is not None:
                upload_url = record.upload_url
                log.info("resuming upload of %s at %d/%d bytes", path, offset, size)
        if upload_url is None:
            upload_url = await self._tus_create(remote_path, size, path.stat().st_mtime_ns)
            offset = 0
            self.state.put(key, upload_url)
        assert offset is not None
        resumed_from = offset
        sent = 0
        if progress:
            progress(offset, size)
        sent = await self._send_chunks(path, upload_url, offset, size, progress)
        self.state.forget(key)
        return UploadResult(remote_path, size, upload_url, resumed_from, sent)

    async def _changed_only(self, files: list[tuple[Path, str]], remote_dir: str) -> list[tuple[Path, str]]:
        remote: dict[str, tuple[int, float]] = {}
        base = remote_dir.strip("/")
        try:
            async for entry in self.walk(base):
                if entry["type"] == "file":
                    full = f"{base}/{entry['path']}" if base else entry["path"]
                    remote[full] = (entry["size"], entry["mtime"])
        except NotFound:
            return files  # nothing there yet
        changed = []
        for local, remote_path in files:
            st = local.stat()
            seen = remote.get(remote_path.strip("/"))
            if seen is None or seen[0] != st.st_size or abs(seen[1] - st.st_mtime) > 1e-3:
                changed.append((local, remote_path))
        return changed

    async def _send_chunks(self, path: Path, upload_url: str, offset: int, size: int, progress: Progress | None) -> int:
        """PATCH the file from ``offset`` chunk by chunk; returns the body bytes put on the wire."""
        sent = 0
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        # Two reusable buffers: the next chunk is read (and hashed) into one while
        # the other is on the wire. A buffer is only refilled after the server has
        # answered for it, i.e. after every byte of it has left the socket.
        want = min(self.chunk_size, max(size - offset, 0))
        buffers = [bytearray(want), bytearray(want)] if want else []
        next_chunk: asyncio.Future[tuple[memoryview, str | None]] | None = None
        turn = 0
        try:
            if offset < size:
                next_chunk = asyncio.ensure_future(asyncio.to_thread(self._read_chunk, fd, offset, size, buffers[turn]))
            while next_chunk is not None:
                data, digest = await next_chunk
                next_chunk = None
                chunk_end = offset + len(data)
                turn ^= 1
                if chunk_end < size:
                    next_chunk = asyncio.ensure_future(asyncio.to_thread(self._read_chunk, fd, chunk_end, size, buffers[turn]))
                counter = [0]
                try:
                    offset = await self._patch(upload_url, offset, data, digest, size, progress, counter)
                finally:
                    sent += counter[0]
                if offset != chunk_end:
                    raise CorralError(f"server accepted the chunk only up to {offset}, expected {chunk_end}")
        finally:
            if next_chunk is not None and not next_chunk.done():
                with contextlib.suppress(BaseException):
                    await next_chunk  # the read thread must finish before its fd is closed
            os.close(fd)
        return sent

    def _read_chunk(self, fd: int, offset: int, size: int, buffer: bytearray) -> tuple[memoryview, str | None]:
        want = min(len(buffer), size - offset)
        view = memoryview(buffer)[:want]
        got = 0
        while got < want:
            n = os.preadv(fd, [view[got:]], offset + got)
            if n == 0:
                raise CorralError("local file shrank during upload")
            got += n
        digest = None
        if self.checksum:
            digest = base64.b64encode(hashlib.new(self.checksum, view).digest()).decode()
        return view, digest

    async def _patch(
        self, upload_url: str, offset: int, data: memoryview, digest: str | None, size: int,
        progress: Progress | None, counter: list[int],
    ) -> int:
        failure: list[BaseException] = []

        async def body() -> AsyncIterator[bytes]:
            for start in range(0, len(data), SEND_PIECE):
                piece = data[start : start + SEND_PIECE]
                yield piece  # type: ignore[misc]
                counter[0] += len(piece)
                if progress:
                    try:
                        progress(offset + counter[0], size)
                    except BaseException as exc:  # aiohttp would hide it in a connection error
                        failure.append(exc)
                        raise

        headers = self._headers(**{
            "Tus-Resumable": TUS_VERSION,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(len(data)),
        })
        if digest:
            headers["Upload-Checksum"] = f"{self.checksum} {digest}"
        try:
            async with self.session.patch(upload_url, data=body(), headers=headers) as response:
                await _raise_for_problem(response)
                return int(response.headers["Upload-Offset"])
        except aiohttp.ClientError:
            if failure:
                raise failure[0] from None
            raise

    async def upload_tree(
        self,
        local_dir: str | os.PathLike[str],
        remote_dir: str,
        *,
        progress: Progress | None = None,
        concurrency: int = 4,
        skip_unchanged: bool = True,
    ) -> list[UploadResult]:
        """Upload a directory tree (files in parallel, empty directories too).

        Like rsync's quick check, a file already on the proxy with the same size
        and modification time is skipped (uploads keep the local mtime), so
        running the same upload again only sends what is missing or changed.
        """
        root = Path(local_dir)
        files: list[tuple[Path, str]] = []
        dirs: list[str] = []
        for current, dirnames, filenames in os.walk(root):
            rel = Path(current).relative_to(root)
            remote_here = str(PurePosixPath(remote_dir, *rel.parts)) if remote_dir else "/".join(rel.parts)
            if not filenames and not dirnames:
                dirs.append(remote_here)
            for name in sorted(filenames):
                local = Path(current, name)
                if local.is_file() and not local.is_symlink():
                    files.append((local, f"{remote_here}/{name}" if remote_here not in ("", ".") else name))
        for remote in dirs:
            if remote not in ("", "."):
                await self.mkdir(remote, parents=True, exist_ok=True)
        if skip_unchanged:
            files = await self._changed_only(files, remote_dir)
        total = sum(local.stat().st_size for local, _ in files)
        done_by_file: dict[str, int] = {}
        lock = threading.Lock()

        def file_progress(remote: str) -> Progress:
            def report(done: int, _total: int) -> None:
                with lock:
                    done_by_file[remote] = done
                    overall = sum(done_by_file.values())
                if progress:
                    progress(overall, total)

            return report

        semaphore = asyncio.Semaphore(max(1, concurrency))

        async def one(local: Path, remote: str) -> UploadResult:
            async with semaphore:
                return await self.upload_file(local, remote, progress=file_progress(remote))

        return list(await asyncio.gather(*(one(local, remote) for local, remote in files)))

    # -- downloads --------------------------------------------------------------------------

    async def download_file(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
    ) -> DownloadResult:
        """Download to ``local_path`` via ``<local_path>.part``, resuming a previous partial copy."""
        target = Path(local_path)
        part = target.with_name(target.name + ".part")
        etag_file = target.with_name(target.name + ".part.etag")
        have = part.stat().st_size if part.exists() else 0
        headers = self._headers()
        if have and etag_file.exists():
            headers["Range"] = f"bytes={have}-"
            headers["If-Range"] = etag_file.read_text().strip()
        else:
            have = 0
        async with self.session.get(self._url("download"), params={"path": remote_path}, headers=headers) as response:
            if response.status == 416:
                have = 0  # our partial copy is longer than the file now: start over
                await response.release()
                part.unlink(missing_ok=True)
                etag_file.unlink(missing_ok=True)
                return await self.download_file(remote_path, local_path, progress=progress)
            await _raise_for_problem(response)
            resumed = have if response.status == 206 else 0
            total = resumed + (response.content_length or 0)
            if response.headers.get("ETag"):
                etag_file.write_text(response.headers["ETag"])
            mode = "r+b" if resumed else "wb"
            fh = open(part, mode, buffering=0)
            writing: asyncio.Future[None] | None = None
            try:
                fh.seek(resumed)
                fh.truncate()
                done = resumed
                if progress:
                    progress(done, total)
                pieces: list[bytes] = []
                pending = 0
                async for piece in response.content.iter_any():
                    pieces.append(piece)
                    pending += len(piece)
                    if pending >= DOWNLOAD_BLOCK or len(pieces) >= 512:
                        if writing is not None:
                            await writing  # one write in flight while the socket keeps filling
                        writing = asyncio.ensure_future(asyncio.to_thread(_write_all, fh.fileno(), pieces))
                        done += pending
                        pieces, pending = [], 0
                        if progress:
                            progress(done, total)
                if writing is not None:
                    await writing
                    writing = None
                if pieces:
                    await asyncio.to_thread(_write_all, fh.fileno(), pieces)
                    done += pending
                if progress:
                    progress(done, total)
            finally:
                if writing is not None:
                    with contextlib.suppress(BaseException):
                        await writing  # never close the fd under a running write
                fh.close()
        if done != total:
            raise CorralError(f"download of {remote_path} ended at {done} of {total} bytes; run it again to resume")
        os.replace(part, target)
        etag_file.unlink(missing_ok=True)
        return DownloadResult(target, total, resumed)

    async def download_dir(
        self,
        remote_path: str,
        local_dir: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
    ) -> int:
        """Download a directory (streamed tar) and unpack its contents into ``local_dir``.

        Returns the number of bytes received. ``progress`` gets (received, 0):
        the archive size is not known in advance.
        """
        destination = Path(local_dir)
        destination.mkdir(parents=True, exist_ok=True)
        pipe = _BlockingPipe()
        received = 0

        def safe_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
            try:
                return tarfile.data_filter(member, dest)
            except tarfile.FilterError as exc:
                # e.g. a symlink in the vfolder pointing to an absolute path: keep going without it
                log.warning("skipping %s: %s", member.name, exc)
                return None

        def unpack() -> None:
            try:
                with tarfile.open(fileobj=pipe, mode="r|") as tar:  # type: ignore[call-overload]
                    for member in tar:
                        parts = PurePosixPath(member.name).parts[1:]  # drop the archive's root folder
                        if not parts:
                            continue
                        member.name = "/".join(parts)
                        tar.extract(member, destination, filter=safe_member)
            except BaseException:
                pipe.abort()  # unblock the feeder
                raise

        worker = asyncio.ensure_future(asyncio.to_thread(unpack))
        try:
            async with self.session.get(self._url("archive"), params={"path": remote_path}, headers=self._headers()) as response:
                await _raise_for_problem(response)
                async for piece in response.content.iter_chunked(SEND_PIECE):
                    received += len(piece)
                    await asyncio.to_thread(pipe.feed, piece)
                    if progress:
                        progress(received, 0)
            pipe.close()
            await worker
        except BaseException:
            pipe.abort()
            with contextlib.suppress(BaseException):
                await worker
            raise
        return received


def _write_all(fd: int, pieces: list[bytes]) -> None:
    total = sum(len(p) for p in pieces)
    done = os.writev(fd, pieces)
    if done < total:
        rest = memoryview(b"".join(pieces))[done:]
        while rest:
            rest = rest[os.write(fd, rest):]


class _BlockingPipe:
    """A bounded byte pipe: the event loop feeds it, a thread reads it like a file."""

    def __init__(self, capacity: int = 16 << 20) -> None:
        self._buffer = bytearray()
        self._capacity = capacity
        self._cond = threading.Condition()
        self._closed = False
        self._aborted = False

    def feed(self, data: bytes) -> None:
        with self._cond:
            while len(self._buffer) >= self._capacity and not self._aborted:
                self._cond.wait()
            if self._aborted:
                raise ConnectionResetError("reader stopped")
            self._buffer += data
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    def read(self, n: int = -1) -> bytes:
        with self._cond:
            while not self._buffer and not self._closed and not self._aborted:
                self._cond.wait()
            if self._aborted:
                raise ConnectionResetError("download aborted")
            if n < 0:
                n = len(self._buffer)
            data = bytes(self._buffer[:n])
            del self._buffer[:n]
            self._cond.notify_all()
            return data
