"""An independent tus client (tuspy, the protocol's Python reference client) against the storage proxy:
creation, a cut mid-upload and a resume from the server's offset, per-chunk checksums."""
from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from tusclient.client import TusClient
from tusclient.storage.filestorage import FileStorage

from .conftest import Proxy

CHUNK = 1 << 20


async def test_tuspy_uploads_resumes_after_a_cut_and_checksums(proxy: Proxy, vfid: str, tmp_path: Path) -> None:
    payload = os.urandom(5 * CHUNK + 12345)
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    endpoint = f"{proxy.url}/client/v1/vfolders/{vfid}/uploads"
    headers = {"Authorization": f"Bearer {proxy.token(vfid)}"}
    urls = FileStorage(str(tmp_path / "tus-urls.json"))

    def uploader():  # type: ignore[no-untyped-def]
        return TusClient(endpoint, headers=headers).uploader(
            str(source), chunk_size=CHUNK, metadata={"path": "in/big.bin"}, upload_checksum=True,
            store_url=True, url_storage=urls,
        )

    first = await asyncio.to_thread(uploader)
    await asyncio.to_thread(first.upload, 2 * CHUNK)  # "the connection dropped" after two chunks
    assert first.offset == 2 * CHUNK
    assert not (proxy.host_path(vfid) / "in" / "big.bin").exists()  # not installed before the last byte

    again = await asyncio.to_thread(uploader)  # a new process: finds the upload URL, asks the offset (HEAD)
    assert again.url == first.url and again.offset == 2 * CHUNK
    await asyncio.to_thread(again.upload)
    installed = proxy.host_path(vfid) / "in" / "big.bin"
    assert hashlib.sha256(installed.read_bytes()).digest() == hashlib.sha256(payload).digest()
    assert proxy.context.uploads.bytes_received <= len(payload)  # nothing sent twice


async def test_a_chunk_whose_checksum_does_not_match_is_refused(proxy: Proxy, vfid: str, tmp_path: Path) -> None:
    import aiohttp

    endpoint = f"{proxy.url}/client/v1/vfolders/{vfid}/uploads"
    headers = {"Authorization": f"Bearer {proxy.token(vfid)}", "Tus-Resumable": "1.0.0"}
    client = TusClient(endpoint, headers={"Authorization": headers["Authorization"]})
    source = tmp_path / "small.bin"
    source.write_bytes(b"x" * 1000)
    made = await asyncio.to_thread(lambda: client.uploader(str(source), metadata={"path": "s.bin"}))
    url = made.url or await asyncio.to_thread(made.create_url)  # creation, by the independent client
    async with aiohttp.ClientSession() as http:
        async with http.patch(url, data=b"x" * 1000, headers={
            **headers, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0",
            "Upload-Checksum": "sha1 " + "A" * 27 + "=",
        }) as answer:
            assert answer.status == 460  # tus: checksum mismatch
    assert not (proxy.host_path(vfid) / "s.bin").exists()
