"""Downloads: one file with HTTP Range (206), or a directory as a streamed tar."""
from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import os
import re
import stat as stat_mod
import tarfile
import threading
from typing import BinaryIO
from urllib.parse import quote

from aiohttp import web

from corral.common.errors import InvalidRequest

from .errors import RangeNotSatisfiable
from .files import VfolderFiles
from .paths import PathParts

log = logging.getLogger(__name__)

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
ARCHIVE_BLOCK = 1 << 20
ARCHIVE_QUEUE_BLOCKS = 16


def file_etag(st: os.stat_result) -> str:
    return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single ``bytes=`` range; None means the whole file."""
    if not header:
        return None
    header = header.strip()
    if "," in header:
        return None  # multipart ranges: answer with the whole file (allowed by RFC 9110)
    match = _RANGE.match(header.replace(" ", ""))
    if not match or match.group(1) == match.group(2) == "":
        raise InvalidRequest(f"malformed Range header: {header!r}")
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    exc = RangeNotSatisfiable(f"range outside the file (size {size})", size=size)
    exc.headers = {"Content-Range": f"bytes */{size}"}  # type: ignore[attr-defined]
    return exc


def _content_disposition(name: str) -> str:
    return f"attachment; filename*=UTF-8''{quote(name)}"


async def send_file(request: web.Request, files: VfolderFiles, parts: PathParts) -> web.StreamResponse:
    fd, st = await asyncio.to_thread(files.open_for_read, parts)
    fobj = os.fdopen(fd, "rb", buffering=0)
    try:
        etag = file_etag(st)
        requested = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if requested and if_range and if_range.strip() != etag:
            requested = None  # the file changed since the client's partial copy: send it all
        byte_range = parse_range(requested, st.st_size)
        start, end = byte_range if byte_range else (0, st.st_size)
        response = web.StreamResponse(status=206 if byte_range else 200)
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["ETag"] = etag
        response.headers["Last-Modified"] = email_date(st.st_mtime)
        response.headers["Content-Type"] = "application/octet-stream"
        response.headers["Content-Disposition"] = _content_disposition(parts[-1])
        if byte_range:
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{st.st_size}"
        response.content_length = end - start
        await response.prepare(request)
        if request.method == "HEAD" or end == start:
            await response.write_eof()
            return response
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("client went away")
        try:
            # Zero-copy from the page cache to the socket, like aiohttp's FileResponse.
            await request._loop.sendfile(transport, fobj, start, end - start)  # type: ignore[attr-defined]
        except NotImplementedError:
            await _copy_chunks(response, fobj, start, end)
        await response.write_eof()
        return response
    finally:
        fobj.close()


def email_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


async def _copy_chunks(response: web.StreamResponse, fobj: BinaryIO, start: int, end: int) -> None:
    position = start
    while position < end:
        chunk = await asyncio.to_thread(os.pread, fobj.fileno(), min(ARCHIVE_BLOCK, end - position), position)
        if not chunk:
            break
        await response.write(chunk)
        position += len(chunk)


# -- tar archives -------------------------------------------------------------------


class _QueueWriter:
    """File-like sink for tarfile that hands 1 MiB blocks to the event loop (with backpressure)."""

    def __init__(self, queue: "asyncio.Queue[bytes | None]", loop: asyncio.AbstractEventLoop) -> None:
        self.queue = queue
        self.loop = loop
        self.buffer = bytearray()
        self.cancelled = threading.Event()

    def write(self, data: bytes) -> int:
        self.buffer += data
        if len(self.buffer) >= ARCHIVE_BLOCK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            self._put(bytes(self.buffer))
            self.buffer.clear()

    def _put(self, item: bytes | None) -> None:
        if self.cancelled.is_set():
            raise ConnectionResetError("archive download cancelled")
        future = asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop)
        while True:
            try:
                future.result(timeout=1.0)
                return
            except TimeoutError:
                if self.cancelled.is_set():
                    future.cancel()
                    raise ConnectionResetError("archive download cancelled") from None

    def finish(self) -> None:
        self.flush()
        self._put(None)


class _PaddedReader:
    """Reads exactly ``size`` bytes: a file that shrank mid-archive is padded with zeros."""

    def __init__(self, fd: int, size: int, name: str) -> None:
        self.fd = fd
        self.left = size
        self.name = name

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = os.read(self.fd, n) if n else b""
        if len(data) < n:
            log.warning("%s shrank while being archived; padding with zeros", self.name)
            data += b"\0" * (n - len(data))
        self.left -= len(data)
        return data


def _add_tree(tar: tarfile.TarFile, dir_fd: int, arcname: str, uid: int, gid: int) -> None:
    st = os.fstat(dir_fd)
    info = tarfile.TarInfo(arcname)
    info.type = tarfile.DIRTYPE
    info.mode = stat_mod.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.uid, info.gid = uid, gid
    tar.addfile(info)
    with os.scandir(dir_fd) as it:
        names = sorted(entry.name for entry in it)
    for name in names:
        member = f"{arcname}/{name}"
        try:
            est = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat_mod.S_ISDIR(est.st_mode):
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                try:
                    _add_tree(tar, child, member, uid, gid)
                finally:
                    os.close(child)
            elif stat_mod.S_ISREG(est.st_mode):
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
                try:
                    fst = os.fstat(fd)
                    if not stat_mod.S_ISREG(fst.st_mode):
                        continue
                    info = tarfile.TarInfo(member)
                    info.size = fst.st_size
                    info.mode = stat_mod.S_IMODE(fst.st_mode)
                    info.mtime = int(fst.st_mtime)
                    info.uid, info.gid = uid, gid
                    tar.addfile(info, _PaddedReader(fd, fst.st_size, member))  # type: ignore[arg-type]
                finally:
                    os.close(fd)
            elif stat_mod.S_ISLNK(est.st_mode):
                info = tarfile.TarInfo(member)
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(name, dir_fd=dir_fd)
                info.mtime = int(est.st_mtime)
                info.uid, info.gid = uid, gid
                tar.addfile(info)
        except FileNotFoundError:
            continue  # removed while we walked


async def send_archive(request: web.Request, files: VfolderFiles, parts: PathParts, root_name: str) -> web.StreamResponse:
    """Stream ``parts`` (a directory) as an uncompressed PAX tar whose members start with ``root_name``/."""
    with files.directory(parts) as fd:
        dir_fd = os.dup(fd)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(ARCHIVE_QUEUE_BLOCKS)
    sink = _QueueWriter(queue, loop)

    def produce() -> None:
        try:
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT, bufsize=ARCHIVE_BLOCK) as tar:  # type: ignore[call-overload]
                _add_tree(tar, dir_fd, root_name, files.owner.uid, files.owner.gid)
            sink.flush()
        finally:
            os.close(dir_fd)
            with contextlib.suppress(ConnectionResetError):
                sink.finish()  # the end marker, also after a failure, so the sender stops

    response = web.StreamResponse(status=200)
    response.headers["Content-Type"] = "application/x-tar"
    response.headers["Content-Disposition"] = _content_disposition(f"{root_name}.tar")
    response.enable_chunked_encoding()
    producer = asyncio.ensure_future(asyncio.to_thread(produce))
    try:
        await response.prepare(request)
        while True:
            block = await queue.get()
            if block is None:
                break
            await response.write(block)
        await producer
        await response.write_eof()
    except BaseException:
        sink.cancelled.set()
        with contextlib.suppress(BaseException):
            await producer
        raise
    return response
