"""Client-facing API over HTTP with real files: transfers, resume, confinement, tokens, quota."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from yarl import URL

from corral.common.errors import CorralError
from corral.storage_proxy.uploads import UploadInfo

from .conftest import JWT_SECRET, VOLUME, Proxy, make_config


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_local_tree(root: Path) -> dict[str, str]:
    files = {
        "top.txt": b"hello\n",
        "empty.bin": b"",
        "data/a.bin": os.urandom(3 * 1024 * 1024 + 17),
        "data/nested/deeper/b.bin": os.urandom(100_000),
        "data/nested/ünï cödé.txt": "sí".encode() * 1000,
    }
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "empty-dir").mkdir()
    return {rel: hashlib.sha256(content).hexdigest() for rel, content in files.items()}


async def test_uploading_a_tree_again_sends_only_what_changed(proxy: Proxy, vfid: str, tmp_path: Path) -> None:
    expected = make_local_tree(tmp_path / "src")
    client = proxy.client(vfid, chunk_size=1 << 20)
    first = await client.upload_tree(tmp_path / "src", "tree")
    assert len(first) == len(expected)
    local_top = tmp_path / "src" / "top.txt"
    assert (proxy.host_path(vfid) / "tree/top.txt").stat().st_mtime_ns == local_top.stat().st_mtime_ns

    assert await client.upload_tree(tmp_path / "src", "tree") == []
    local_top.write_bytes(b"changed\n")
    again = await client.upload_tree(tmp_path / "src", "tree")
    assert [r.remote_path for r in again] == ["tree/top.txt"]
    assert (proxy.host_path(vfid) / "tree/top.txt").read_bytes() == b"changed\n"


async def test_upload_tree_then_download_back(proxy: Proxy, vfid: str, tmp_path: Path) -> None:
    expected = make_local_tree(tmp_path / "src")
    client = proxy.client(vfid, chunk_size=1 << 20)
    seen: list[tuple[int, int]] = []
    results = await client.upload_tree(tmp_path / "src", "upload", progress=lambda d, t: seen.append((d, t)))
    assert len(results) == len(expected)
    total = sum((tmp_path / "src" / rel).stat().st_size for rel in expected)
    assert seen[-1] == (total, total)
    assert (proxy.host_path(vfid) / "upload/empty-dir").is_dir()
    for rel, digest in expected.items():
        assert sha256(proxy.host_path(vfid) / "upload" / rel) == digest
        out = tmp_path / "one-by-one" / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        await client.download_file(f"upload/{rel}", out)
        assert sha256(out) == digest
    await client.download_dir("upload", tmp_path / "archive")
    for rel, digest in expected.items():
        assert sha256(tmp_path / "archive" / rel) == digest
    assert (tmp_path / "archive/empty-dir").is_dir()
    # nothing left behind in staging
    assert not [p for p in (proxy.volume_root / ".corral/uploads").iterdir() if p.suffix == ".part"]


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("checksum", ["sha1", None])
async def test_interrupted_upload_resumes_resending_at_most_one_chunk(
    proxy: Proxy, vfid: str, tmp_path: Path, checksum: str | None
) -> None:
    chunk = 1 << 20
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(10 * chunk + 123))
    size = src.stat().st_size
    client = proxy.client(vfid, chunk_size=chunk, checksum=checksum)

    def stop_midway(done: int, total: int) -> None:
        if done >= 4 * chunk + chunk // 2:
            raise Interrupt()

    with pytest.raises(Interrupt):
        await client.upload_file(src, "big.bin", progress=stop_midway)
    assert not (proxy.host_path(vfid) / "big.bin").exists()
    result = await client.upload_file(src, "big.bin")
    assert sha256(proxy.host_path(vfid) / "big.bin") == sha256(src)
    assert result.resumed_from >= 4 * chunk
    assert result.bytes_sent == size - result.resumed_from
    total_received = proxy.context.uploads.bytes_received  # both runs, as the server counted
    assert total_received <= size + chunk, f"re-sent {total_received - size} bytes"
    # The state file is gone: a third run uploads afresh.
    assert not list((tmp_path / "upload-state").glob("*.json"))


async def test_download_resumes_from_part_file(proxy: Proxy, vfid: str, tmp_path: Path) -> None:
    content = os.urandom(2_000_000)
    (proxy.host_path(vfid) / "f.bin").write_bytes(content)
    client = proxy.client(vfid)
    target = tmp_path / "f.bin"
    async with proxy.session.get(
        f"{proxy.url}/client/v1/vfolders/{vfid}/download", params={"path": "f.bin"},
        headers={"Authorization": f"Bearer {proxy.token(vfid, 'ro')}"},
    ) as resp:
        etag = resp.headers["ETag"]
    (tmp_path / "f.bin.part").write_bytes(content[:700_000])
    (tmp_path / "f.bin.part.etag").write_text(etag)
    result = await client.download_file("f.bin", target)
    assert result.resumed_from == 700_000
    assert target.read_bytes() == content
    assert not (tmp_path / "f.bin.part").exists()


async def test_range_requests(proxy: Proxy, vfid: str) -> None:
    content = bytes(range(256)) * 10
    (proxy.host_path(vfid) / "r.bin").write_bytes(content)
    url = f"{proxy.url}/client/v1/vfolders/{vfid}/download"
    auth = {"Authorization": f"Bearer {proxy.token(vfid, 'ro')}"}
    async with proxy.session.get(url, params={"path": "r.bin"}, headers={**auth, "Range": "bytes=10-19"}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 10-19/{len(content)}"
        assert await resp.read() == content[10:20]
    async with proxy.session.get(url, params={"path": "r.bin"}, headers={**auth, "Range": "bytes=-5"}) as resp:
        assert resp.status == 206 and await resp.read() == content[-5:]
    async with proxy.session.get(url, params={"path": "r.bin"}, headers={**auth, "Range": "bytes=2550-"}) as resp:
        assert resp.status == 206 and await resp.read() == content[2550:]
    async with proxy.session.get(url, params={"path": "r.bin"}, headers={**auth, "Range": "bytes=99999-"}) as resp:
        assert resp.status == 416
        assert resp.headers["Content-Range"] == f"bytes */{len(content)}"
        assert resp.content_type == "application/problem+json"
    async with proxy.session.get(url, params={"path": "r.bin"}, headers={**auth, "Range": "bytes=5-", "If-Range": '"stale"'}) as resp:
        assert resp.status == 200 and await resp.read() == content
    # a browser link: token in the query string, GET only
    async with proxy.session.get(url, params={"path": "r.bin", "token": proxy.token(vfid, "ro")}) as resp:
        assert resp.status == 200


# -- confinement -------------------------------------------------------------------


@pytest.fixture
def escape_setup(proxy: Proxy, vfid: str, tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    root = proxy.host_path(vfid)
    os.symlink(outside, root / "dirlink")
    os.symlink(outside / "secret.txt", root / "filelink")
    os.symlink("../../outside", root / "rellink")
    (root / "inside.txt").write_text("fine")
    return outside


ESCAPES = [
    "../outside/secret.txt", "/etc/passwd", "a/../../x", "%2e%2e/secret.txt", "%252e%252e%252fx", "x\x00y",
    "dirlink/secret.txt", "rellink/secret.txt", "dirlink/sub/new",
]


@pytest.mark.parametrize("path", ESCAPES)
async def test_path_escapes_are_refused_everywhere(proxy: Proxy, vfid: str, escape_setup: Path, path: str) -> None:
    client = proxy.client(vfid)
    local = escape_setup.parent / "up.txt"
    local.write_text("payload")
    calls = {
        "download": lambda: client.download_file(path, escape_setup.parent / "stolen"),
        "archive": lambda: client.download_dir(path, escape_setup.parent / "stolen-dir"),
        "stat": lambda: client.stat(path),
        "list": lambda: client.list(path),
        "mkdir": lambda: client.mkdir(path, parents=True),
        "move-in": lambda: client.move("inside.txt", path),
        "move-out": lambda: client.move(path, "stolen.txt"),
        "delete": lambda: client.delete(path, recursive=True),
        "usage": lambda: client.usage(path),
        "tree": lambda: client.tree(path),
        "upload": lambda: client.upload_file(local, path),
    }
    for name, call in calls.items():
        with pytest.raises(CorralError) as info:
            await call()
        assert info.value.http_status == 400, (name, path, info.value)
        assert info.value.type_uri.endswith("/path-rejected"), (name, path)
    assert sorted(os.listdir(escape_setup)) == ["secret.txt"]
    assert (escape_setup / "secret.txt").read_text() == "top secret"
    assert (proxy.host_path(vfid) / "inside.txt").read_text() == "fine"
    assert not (escape_setup.parent / "stolen").exists()


async def test_links_themselves_cannot_be_read_through(proxy: Proxy, vfid: str, escape_setup: Path, tmp_path: Path) -> None:
    client = proxy.client(vfid)
    for call in (
        lambda: client.download_file("filelink", tmp_path / "stolen"),
        lambda: client.list("dirlink"),
        lambda: client.usage("dirlink"),
        lambda: client.tree("rellink"),
        lambda: client.download_dir("dirlink", tmp_path / "stolen-dir"),
    ):
        with pytest.raises(CorralError) as info:
            await call()
        assert info.value.http_status == 400
    assert not (tmp_path / "stolen").exists()
    assert not list((tmp_path / "stolen-dir").rglob("*")) if (tmp_path / "stolen-dir").exists() else True


@pytest.mark.parametrize("raw", ["%2e%2e%2fsecret.txt", "..%2fx", "%2e%2e", "%2Fetc%2Fpasswd", "a%00b", "%252e%252e"])
async def test_percent_encoded_escapes_in_raw_urls(proxy: Proxy, vfid: str, escape_setup: Path, raw: str) -> None:
    url = URL(f"{proxy.url}/client/v1/vfolders/{vfid}/download?path={raw}", encoded=True)
    async with proxy.session.get(url, headers={"Authorization": f"Bearer {proxy.token(vfid)}"}) as resp:
        assert resp.status == 400, await resp.text()
        assert resp.content_type == "application/problem+json"


async def test_symlinks_are_listed_not_followed(proxy: Proxy, vfid: str, escape_setup: Path, tmp_path: Path) -> None:
    client = proxy.client(vfid)
    entries = {e["name"]: e for e in await client.list("")}
    assert entries["dirlink"]["type"] == "symlink"
    assert entries["dirlink"]["target"] == str(escape_setup)
    listing = await client.tree("")
    assert {e["path"] for e in listing.entries} == {"dirlink", "filelink", "rellink", "inside.txt"}
    await client.download_dir("", tmp_path / "arch")
    assert not (tmp_path / "arch/dirlink/secret.txt").exists()
    assert (tmp_path / "arch/inside.txt").read_text() == "fine"
    # deleting a symlink removes the link, never its target
    await client.delete("dirlink", recursive=True)
    assert (escape_setup / "secret.txt").exists()


async def test_upload_over_a_symlink_replaces_the_link_only(proxy: Proxy, vfid: str, escape_setup: Path, tmp_path: Path) -> None:
    local = tmp_path / "new.txt"
    local.write_text("new content")
    await proxy.client(vfid).upload_file(local, "filelink")
    assert (escape_setup / "secret.txt").read_text() == "top secret"
    assert not (proxy.host_path(vfid) / "filelink").is_symlink()
    assert (proxy.host_path(vfid) / "filelink").read_text() == "new content"


# -- tokens ----------------------------------------------------------------------------


async def test_token_checks(proxy: Proxy, vfid: str, tmp_path: Path) -> None:
    from corral.common.vfolder_token import issue_vfolder_token

    other = await proxy.create_vfolder()
    (proxy.host_path(vfid) / "f.txt").write_text("x")
    files_url = f"{proxy.url}/client/v1/vfolders/{vfid}/files"
    cases = {
        None: 401,
        "garbage": 401,
        issue_vfolder_token(JWT_SECRET, vfolder_id=vfid, volume=VOLUME, user="u", permission="rw", ttl_s=5, now=time.time() - 600): 401,
        issue_vfolder_token("f" * 40, vfolder_id=vfid, volume=VOLUME, user="u", permission="rw"): 401,
        proxy.token(other): 403,
        proxy.token(vfid, "ro"): 200,
    }
    for token, status in cases.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with proxy.session.get(files_url, headers=headers) as resp:
            assert resp.status == status, (token, await resp.text())
            if status >= 400:
                assert resp.content_type == "application/problem+json"


async def test_read_only_token_cannot_write(proxy: Proxy, vfid: str, tmp_path: Path) -> None:
    (proxy.host_path(vfid) / "f.txt").write_text("x")
    ro = proxy.client(vfid, "ro")
    local = tmp_path / "l.txt"
    local.write_text("data")
    for call in (
        ro.upload_file(local, "new.txt"),
        ro.mkdir("d"),
        ro.move("f.txt", "g.txt"),
        ro.delete("f.txt"),
    ):
        with pytest.raises(CorralError) as info:
            await call
        assert info.value.http_status == 403
    assert sorted(os.listdir(proxy.host_path(vfid))) == ["f.txt"]
    assert [e["name"] for e in await ro.list()] == ["f.txt"]
    await ro.download_file("f.txt", tmp_path / "copy.txt")
    # a read-only token cannot even PATCH an upload that a rw token created
    rw = proxy.client(vfid)
    upload_url = await rw._tus_create("later.txt", 4)
    async with proxy.session.patch(
        upload_url, data=b"data",
        headers={"Authorization": f"Bearer {proxy.token(vfid, 'ro')}", "Tus-Resumable": "1.0.0",
                 "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    ) as resp:
        assert resp.status == 403
        assert resp.headers["Tus-Resumable"] == "1.0.0"


# -- quota ---------------------------------------------------------------------------------


async def test_quota_refusal_names_the_quota(proxy: Proxy, tmp_path: Path) -> None:
    vfid = await proxy.create_vfolder(quota_bytes=1000)
    client = proxy.client(vfid)
    small = tmp_path / "small.bin"
    small.write_bytes(b"a" * 600)
    await client.upload_file(small, "one.bin")
    with pytest.raises(CorralError) as info:
        await client.upload_file(small, "two.bin")
    err = info.value
    assert err.http_status == 413
    assert err.extra["quota_bytes"] == 1000
    assert err.extra["usage_bytes"] == 600
    assert "quota" in err.detail
    assert not (proxy.host_path(vfid) / "two.bin").exists()
    # the token can carry a tighter quota than the volume's
    vfid2 = await proxy.create_vfolder()
    tight = proxy.client(vfid2)
    tight.token = proxy.token(vfid2, quota_bytes=100)
    with pytest.raises(CorralError) as info:
        await tight.upload_file(small, "x.bin")
    assert info.value.http_status == 413 and info.value.extra["quota_bytes"] == 100


async def test_unfinished_uploads_count_against_the_quota(proxy: Proxy) -> None:
    vfid = await proxy.create_vfolder(quota_bytes=1000)
    client = proxy.client(vfid)
    await client._tus_create("a.bin", 700)
    with pytest.raises(CorralError) as info:
        await client._tus_create("b.bin", 400)
    assert info.value.http_status == 413 and info.value.extra["reserved_bytes"] == 700


async def test_uploads_created_at_once_cannot_overrun_the_quota_together(proxy: Proxy) -> None:
    import asyncio

    vfid = await proxy.create_vfolder(quota_bytes=1000)
    client = proxy.client(vfid)
    outcomes = await asyncio.gather(*(client._tus_create(f"f{i}.bin", 400) for i in range(6)), return_exceptions=True)
    admitted = [o for o in outcomes if isinstance(o, str)]
    refused = [o for o in outcomes if isinstance(o, CorralError)]
    assert len(admitted) == 2 and len(refused) == 4
    assert all(e.http_status == 413 for e in refused)


# -- tus protocol details ----------------------------------------------------------------


async def test_tus_protocol(proxy: Proxy, vfid: str) -> None:
    base = f"{proxy.url}/client/v1/vfolders/{vfid}/uploads"
    auth = {"Authorization": f"Bearer {proxy.token(vfid)}"}
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    async with proxy.session.options(base) as resp:
        assert resp.status == 204
        assert resp.headers["Tus-Version"] == "1.0.0"
        assert set(resp.headers["Tus-Extension"].split(",")) >= {"creation", "checksum", "termination", "expiration"}
        assert "sha1" in resp.headers["Tus-Checksum-Algorithm"]
    meta = "path " + base64.b64encode(b"t.bin").decode()
    async with proxy.session.post(base, headers={**auth, "Upload-Length": "10", "Upload-Metadata": meta}) as resp:
        assert resp.status == 412 and resp.headers["Tus-Version"] == "1.0.0"
    async with proxy.session.post(base, headers={**tus, "Upload-Length": "10"}) as resp:
        assert resp.status == 400  # no destination path
    async with proxy.session.post(base, headers={**tus, "Upload-Length": "10", "Upload-Metadata": meta}) as resp:
        assert resp.status == 201
        assert "Upload-Expires" in resp.headers
        url = str(resp.url.join(URL(resp.headers["Location"])))
    patch = {**tus, "Content-Type": "application/offset+octet-stream"}
    async with proxy.session.patch(url, data=b"01234", headers={**tus, "Upload-Offset": "0", "Content-Type": "text/plain"}) as resp:
        assert resp.status == 415
    async with proxy.session.patch(url, data=b"01234", headers={**patch, "Upload-Offset": "3"}) as resp:
        assert resp.status == 409
    bad = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    async with proxy.session.patch(url, data=b"01234", headers={**patch, "Upload-Offset": "0", "Upload-Checksum": f"sha1 {bad}"}) as resp:
        assert resp.status == 460
    async with proxy.session.head(url, headers=tus) as resp:
        assert resp.headers["Upload-Offset"] == "0" and resp.headers["Upload-Length"] == "10"
    good = base64.b64encode(hashlib.sha1(b"01234").digest()).decode()
    async with proxy.session.patch(url, data=b"01234", headers={**patch, "Upload-Offset": "0", "Upload-Checksum": f"sha1 {good}"}) as resp:
        assert resp.status == 204 and resp.headers["Upload-Offset"] == "5"
    async with proxy.session.patch(url, data=b"56789XXXX", headers={**patch, "Upload-Offset": "5"}) as resp:
        assert resp.status == 400  # past Upload-Length
    async with proxy.session.patch(url, data=b"56789", headers={**patch, "Upload-Offset": "5"}) as resp:
        assert resp.status == 204 and resp.headers["Upload-Offset"] == "10"
    assert (proxy.host_path(vfid) / "t.bin").read_bytes() == b"0123456789"
    async with proxy.session.head(url, headers=tus) as resp:
        assert resp.status == 200 and resp.headers["Upload-Offset"] == "10"  # a lost final answer can be recovered
    # termination
    async with proxy.session.post(base, headers={**tus, "Upload-Length": "10", "Upload-Metadata": meta}) as resp:
        url2 = str(resp.url.join(URL(resp.headers["Location"])))
    async with proxy.session.delete(url2, headers=tus) as resp:
        assert resp.status == 204
    async with proxy.session.head(url2, headers=tus) as resp:
        assert resp.status == 404
    # expiration
    async with proxy.session.post(base, headers={**tus, "Upload-Length": "10", "Upload-Metadata": meta}) as resp:
        url3 = str(resp.url.join(URL(resp.headers["Location"])))
    upload_id = url3.rsplit("/", 1)[1]
    info_file = proxy.volume_root / ".corral/uploads" / f"{upload_id}.json"
    doc = json.loads(info_file.read_text())
    doc["expires_at"] = time.time() - 1
    info_file.write_text(json.dumps(doc))
    async with proxy.session.patch(url3, data=b"01234", headers={**patch, "Upload-Offset": "0"}) as resp:
        assert resp.status == 410
    assert not info_file.exists()
    # uploads of another vfolder are invisible
    other = await proxy.create_vfolder()
    async with proxy.session.head(url.replace(vfid, other), headers={**tus, "Authorization": f"Bearer {proxy.token(other)}"}) as resp:
        assert resp.status == 404


async def test_zero_length_upload(proxy: Proxy, vfid: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    await proxy.client(vfid).upload_file(empty, "e/empty")
    assert (proxy.host_path(vfid) / "e/empty").read_bytes() == b""


async def test_expired_uploads_are_purged(proxy: Proxy, vfid: str) -> None:
    client = proxy.client(vfid)
    url = await client._tus_create("p.bin", 10)
    upload_id = url.rsplit("/", 1)[1]
    info_file = proxy.volume_root / ".corral/uploads" / f"{upload_id}.json"
    info = UploadInfo(**json.loads(info_file.read_text()))
    info.expires_at = time.time() - 5
    info_file.write_text(json.dumps(info.__dict__))
    assert await proxy.context.uploads.purge_expired() == 1
    assert not list((proxy.volume_root / ".corral/uploads").iterdir())


# -- file operations -----------------------------------------------------------------------


async def test_list_paginates_sorted(proxy: Proxy, vfid: str) -> None:
    for i in range(25):
        (proxy.host_path(vfid) / f"f{i:02d}").write_text(str(i))
    client = proxy.client(vfid, "ro")
    page = await client.list_page("", limit=10)
    assert [e["name"] for e in page["entries"]] == [f"f{i:02d}" for i in range(10)]
    assert page["next_cursor"]
    everything = await client.list("", page_size=10)
    assert [e["name"] for e in everything] == [f"f{i:02d}" for i in range(25)]


async def test_mkdir_move_delete(proxy: Proxy, vfid: str) -> None:
    client = proxy.client(vfid)
    root = proxy.host_path(vfid)
    await client.mkdir("a/b/c", parents=True)
    assert (root / "a/b/c").is_dir()
    with pytest.raises(CorralError) as info:
        await client.mkdir("a/b/c")
    assert info.value.http_status == 409
    await client.mkdir("a/b/c", exist_ok=True)
    with pytest.raises(CorralError) as info:
        await client.mkdir("x/y")
    assert info.value.http_status == 404
    (root / "a/f.txt").write_text("f")
    await client.move("a/f.txt", "a/b/g.txt")
    assert (root / "a/b/g.txt").read_text() == "f"
    (root / "h.txt").write_text("h")
    with pytest.raises(CorralError) as info:
        await client.move("h.txt", "a/b/g.txt")
    assert info.value.http_status == 409
    await client.move("h.txt", "a/b/g.txt", overwrite=True)
    assert (root / "a/b/g.txt").read_text() == "h"
    with pytest.raises(CorralError) as info:
        await client.move("a", "a/b/inside")
    assert info.value.http_status == 400
    with pytest.raises(CorralError) as info:
        await client.delete("a")
    assert info.value.http_status == 409
    with pytest.raises(CorralError) as info:
        await client.delete("")
    assert info.value.http_status == 400
    await client.delete("a", recursive=True)
    assert os.listdir(root) == []
    with pytest.raises(CorralError) as info:
        await client.delete("a")
    assert info.value.http_status == 404


async def test_usage_and_tree_with_progress(proxy: Proxy, vfid: str) -> None:
    root = proxy.host_path(vfid)
    for d in range(5):
        (root / f"d{d}").mkdir()
        for f in range(10):
            (root / f"d{d}" / f"f{f}").write_bytes(b"z" * f)
    client = proxy.client(vfid, "ro")
    plain = await client.usage()
    assert (plain["files"], plain["dirs"], plain["bytes"]) == (50, 5, 5 * 45)
    lines: list[dict] = []
    streamed = await client.usage("d1", progress=lines.append)
    assert (streamed["files"], streamed["bytes"]) == (10, 45)
    listing = await client.tree("", progress=lambda doc: None)
    assert len(listing.entries) == 55 == listing.totals["entries"]
    assert {e["path"] for e in listing.entries} >= {"d0", "d0/f9", "d4/f0"}


async def test_files_are_owned_by_the_session_user(aiohttp_server, volume_root: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    import aiohttp

    from corral.client.storage import StorageClient
    from corral.client.upload_state import UploadStateStore
    from corral.common.vfolder_token import issue_vfolder_token
    from corral.storage_proxy.server import create_app

    from .conftest import MANAGER_SECRET

    config = make_config(volume_root, owner_uid=1000, owner_gid=1000)
    server = await aiohttp_server(create_app(config))
    url = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/manager/v1/vfolders", json={"volume": VOLUME, "vfid": "owned"},
                                headers={"Authorization": f"Bearer {MANAGER_SECRET}"}) as resp:
            assert resp.status == 201
        token = issue_vfolder_token(JWT_SECRET, vfolder_id="owned", volume=VOLUME, user="u", permission="rw")
        client = StorageClient(url, token, session=session, state_store=UploadStateStore(tmp_path / "s"))
        local = tmp_path / "f"
        local.write_text("x")
        await client.upload_file(local, "new/dir/f")
        await client.mkdir("made")
    root = volume_root / "owned"
    for rel in ("", "new", "new/dir", "new/dir/f", "made"):
        st = (root / rel).stat()
        assert (st.st_uid, st.st_gid) == (1000, 1000), rel
