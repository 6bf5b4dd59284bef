"""Resumable uploads on disk: the state behind the tus endpoints.

Each upload is two files in the volume's hidden staging directory (same
filesystem as the vfolders, so completion is an atomic rename):

- ``<id>.json`` — destination (volume, vfid, path), length, owner, expiry;
- ``<id>.part`` — the bytes received so far; its size *is* the upload offset,
  so a crash never leaves offset and data disagreeing.

A chunk that carries a checksum is only kept if the whole chunk arrived and
matched; an interrupted chunk without checksum keeps what arrived. Either way
a resumed upload re-sends at most one chunk.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

from corral.common.errors import InvalidRequest, NotFound

from .errors import ChecksumMismatch, UploadBusy, UploadGone
from .files import FILE_MODE
from .paths import parse_vfolder_path
from .volumes import VolumeBackend

log = logging.getLogger(__name__)

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5}
# Bytes gathered from the socket before one write to disk.
WRITE_BLOCK = 4 << 20
MAX_PIECES = 512  # well under IOV_MAX (1024)
LOCK_WAIT_S = 15.0


@dataclass
class UploadInfo:
    id: str
    volume: str
    vfid: str
    path: str
    length: int
    user: str
    created_at: float
    expires_at: float
    metadata: dict[str, str] = field(default_factory=dict)
    completed: bool = False

    def parts(self) -> tuple[str, ...]:
        return parse_vfolder_path(self.path)


@dataclass(frozen=True)
class ChunkChecksum:
    algorithm: str
    digest: bytes

    @classmethod
    def parse(cls, header: str) -> "ChunkChecksum":
        algorithm, _, encoded = header.strip().partition(" ")
        algorithm = algorithm.lower()
        if algorithm not in CHECKSUM_ALGORITHMS:
            raise InvalidRequest(f"unsupported checksum algorithm {algorithm!r}; use one of {', '.join(CHECKSUM_ALGORITHMS)}")
        try:
            digest = base64.b64decode(encoded.strip(), validate=True)
        except ValueError:
            raise InvalidRequest("Upload-Checksum value is not base64") from None
        return cls(algorithm, digest)


OnComplete = Callable[[UploadInfo, Path], Awaitable[None]]


class UploadStore:
    def __init__(self, volumes: dict[str, VolumeBackend], *, expiry_s: int, max_size: int) -> None:
        self.volumes = volumes
        self.expiry_s = expiry_s
        self.max_size = max_size
        self._locks: dict[str, asyncio.Lock] = {}
        # In-flight (not completed) uploads per vfolder → reserved bytes, for quotas.
        self._pending: dict[tuple[str, str], dict[str, int]] = {}
        self.bytes_received = 0  # since start; the tests and benchmark read it

    # -- files -----------------------------------------------------------------

    def _staging(self, volume: str) -> Path:
        return self.volumes[volume].staging_dir

    def info_path(self, volume: str, upload_id: str) -> Path:
        return self._staging(volume) / f"{upload_id}.json"

    def data_path(self, info: UploadInfo) -> Path:
        return self._staging(info.volume) / f"{info.id}.part"

    def _write_info(self, info: UploadInfo) -> None:
        path = self.info_path(info.volume, info.id)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(info)))
        os.replace(tmp, path)

    # -- lifecycle --------------------------------------------------------------------

    async def load(self) -> None:
        """Index unfinished uploads (for quota reservations) and purge expired ones."""
        await self.purge_expired(rebuild_index=True)

    def pending_bytes(self, volume: str, vfid: str) -> int:
        return sum(self._pending.get((volume, vfid), {}).values())

    async def create(
        self, *, volume: str, vfid: str, path: str, length: int, user: str, metadata: dict[str, str]
    ) -> UploadInfo:
        if self.max_size and length > self.max_size:
            raise InvalidRequest(f"upload larger than this proxy's maximum of {self.max_size} bytes")
        now = time.time()
        info = UploadInfo(
            id=secrets.token_hex(16), volume=volume, vfid=vfid, path=path, length=length, user=user,
            created_at=now, expires_at=now + self.expiry_s, metadata=metadata,
        )
        owner = self.volumes[volume].owner

        def create_files() -> None:
            fd = os.open(self.data_path(info), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
            try:
                owner.apply_fd(fd)
            finally:
                os.close(fd)
            self._write_info(info)

        await asyncio.to_thread(create_files)
        self._pending.setdefault((volume, vfid), {})[info.id] = length
        log.info("upload %s created: %s/%s:%s (%d bytes) by %s", info.id, volume, vfid, path, length, user)
        return info

    async def get(self, volume: str, vfid: str, upload_id: str) -> UploadInfo:
        if not UPLOAD_ID.match(upload_id) or volume not in self.volumes:
            raise NotFound("no such upload")
        try:
            text = await asyncio.to_thread(self.info_path(volume, upload_id).read_text)
        except FileNotFoundError:
            raise NotFound("no such upload (finished long ago, terminated or never created)") from None
        info = UploadInfo(**json.loads(text))
        if info.vfid != vfid:
            raise NotFound("no such upload")
        if info.expires_at < time.time():
            await self._remove(info)
            raise UploadGone("this upload has expired; start a new one")
        return info

    async def offset(self, info: UploadInfo) -> int:
        if info.completed:
            return info.length
        try:
            return (await asyncio.to_thread(os.stat, self.data_path(info))).st_size
        except FileNotFoundError:
            raise UploadGone("this upload's data is gone; start a new one") from None

    @contextlib.asynccontextmanager
    async def locked(self, upload_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(upload_id, asyncio.Lock())
        try:
            await asyncio.wait_for(lock.acquire(), LOCK_WAIT_S)
        except TimeoutError:
            raise UploadBusy("another request is writing this upload; retry later") from None
        try:
            yield
        finally:
            lock.release()
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self._locks.pop(upload_id, None)

    async def append(
        self,
        info: UploadInfo,
        offset: int,
        chunks: AsyncIterator[bytes],
        checksum: ChunkChecksum | None,
    ) -> int:
        """Write a PATCH body at ``offset``; returns the new offset.

        Disk writes (and hashing) run in a thread while the next block is read
        from the socket, so receiving and writing overlap.
        """
        remaining = info.length - offset
        hasher = CHECKSUM_ALGORITHMS[checksum.algorithm]() if checksum else None
        fd = await asyncio.to_thread(os.open, self.data_path(info), os.O_WRONLY | os.O_CLOEXEC)
        written = 0
        pending_write: asyncio.Future[None] | None = None
        kept = False

        def write_pieces(pieces: list[bytes], at: int) -> None:
            # pwritev straight from the socket's buffers: no joining copy.
            if hasher is not None:
                for piece in pieces:
                    hasher.update(piece)
            total = sum(len(p) for p in pieces)
            done = os.pwritev(fd, pieces, at)
            if done < total:  # short write (rare on regular files): finish the rest plainly
                rest = memoryview(b"".join(pieces))[done:]
                while rest:
                    n = os.pwrite(fd, rest, at + done)
                    rest = rest[n:]
                    done += n

        try:
            pieces: list[bytes] = []
            pending_bytes = 0
            received = 0
            interrupted = False
            try:
                async for piece in chunks:
                    received += len(piece)
                    self.bytes_received += len(piece)
                    if received > remaining:
                        raise InvalidRequest("body goes past Upload-Length")
                    pieces.append(piece)
                    pending_bytes += len(piece)
                    if pending_bytes >= WRITE_BLOCK or len(pieces) >= MAX_PIECES:
                        if pending_write is not None:
                            await pending_write
                        pending_write = asyncio.ensure_future(asyncio.to_thread(write_pieces, pieces, offset + written))
                        written += pending_bytes
                        pieces, pending_bytes = [], 0
            except InvalidRequest:
                raise
            except Exception as exc:  # socket errors, aiohttp payload errors (no common base to import)
                interrupted = True
                log.info("upload %s: body interrupted after %d bytes (%r)", info.id, received, exc)
            if pending_write is not None:
                await pending_write
                pending_write = None
            if pieces:
                await asyncio.to_thread(write_pieces, pieces, offset + written)
                written += pending_bytes
            if checksum is not None:
                if interrupted:
                    return offset  # an incomplete chunk cannot be verified: drop it
                assert hasher is not None
                if hasher.digest() != checksum.digest:
                    raise ChecksumMismatch(f"{checksum.algorithm} of the received chunk does not match Upload-Checksum")
            kept = True
            return offset + written
        finally:
            if pending_write is not None:
                with contextlib.suppress(Exception):
                    await pending_write
            if not kept:
                await asyncio.to_thread(os.ftruncate, fd, offset)
            await asyncio.to_thread(os.close, fd)
            info.expires_at = time.time() + self.expiry_s
            await asyncio.to_thread(self._write_info, info)

    async def complete(self, info: UploadInfo, on_complete: OnComplete) -> None:
        """Move the finished file into the vfolder and remember it is done."""
        data = self.data_path(info)
        await on_complete(info, data)
        info.completed = True
        await asyncio.to_thread(self._write_info, info)
        self._pending.get((info.volume, info.vfid), {}).pop(info.id, None)
        log.info("upload %s complete: %s/%s:%s", info.id, info.volume, info.vfid, info.path)

    async def terminate(self, info: UploadInfo) -> None:
        await self._remove(info)
        log.info("upload %s terminated", info.id)

    async def _remove(self, info: UploadInfo) -> None:
        def remove() -> None:
            for path in (self.data_path(info), self.info_path(info.volume, info.id)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

        await asyncio.to_thread(remove)
        self._pending.get((info.volume, info.vfid), {}).pop(info.id, None)

    async def purge_expired(self, *, rebuild_index: bool = False) -> int:
        """Delete expired uploads; rebuild the in-flight index. Returns how many went."""
        now = time.time()
        purged = 0
        pending: dict[tuple[str, str], dict[str, int]] = {}
        for name in self.volumes:
            staging = self._staging(name)
            entries = await asyncio.to_thread(lambda: list(staging.glob("*.json")) if staging.is_dir() else [])
            for info_file in entries:
                try:
                    info = UploadInfo(**json.loads(await asyncio.to_thread(info_file.read_text)))
                except (OSError, ValueError, TypeError):
                    log.warning("ignoring unreadable upload record %s", info_file)
                    continue
                if info.expires_at < now:
                    await self._remove(info)
                    purged += 1
                elif not info.completed:
                    pending.setdefault((info.volume, info.vfid), {})[info.id] = info.length
            # Orphaned data files (record lost): remove once they are old.
            for part in await asyncio.to_thread(lambda: list(staging.glob("*.part")) if staging.is_dir() else []):
                if not part.with_suffix(".json").exists():
                    with contextlib.suppress(OSError):
                        if part.stat().st_mtime < now - self.expiry_s:
                            part.unlink()
        if rebuild_index:
            self._pending = pending
        if purged:
            log.info("purged %d expired uploads", purged)
        return purged
