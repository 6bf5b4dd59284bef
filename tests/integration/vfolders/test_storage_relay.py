"""The web UI's relay to the storage proxies' file API (manager/api/storage_relay.py): a signed-in browser
reaches the proxy through the manager's own origin with a vfolder token; tus uploads (Location rewritten
to the relay), listings, downloads with ``?token=`` and tar archives pass through; no cookie, no CSRF
token or a read-only token are refused."""
from __future__ import annotations

import base64
import io
import tarfile
from http.cookies import SimpleCookie
from typing import Any, AsyncIterator

import aiohttp
import pytest

from corral.manager.passwords import set_user_password

from tests.integration.spine.cluster import LiveCluster

API = "/api/v1"
PASSWORD = "relay-test-password-123"


class WebUser:
    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base, self.http, self.cookie, self.csrf = base, http, "", ""

    async def login(self, username: str) -> None:
        async with self.http.post(f"{self.base}{API}/auth/login", json={"username": username, "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            self.cookie = SimpleCookie(r.headers["Set-Cookie"])["corral_session"].value
            self.csrf = (await r.json())["csrf_token"]

    async def call(self, method: str, path: str, *, cookie: bool = True, csrf: bool = True,
                   headers: dict[str, str] | None = None, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        sent = dict(headers or {})
        if cookie:
            sent["Cookie"] = f"corral_session={self.cookie}"
        if csrf and method not in ("GET", "HEAD"):
            sent["X-CSRF-Token"] = self.csrf
        url = path if path.startswith("http") else self.base + path
        async with self.http.request(method, url, headers=sent, **kwargs) as r:
            return r.status, dict(r.headers), await r.read()


@pytest.fixture
async def web(storage_cluster: LiveCluster) -> AsyncIterator[WebUser]:
    await set_user_password(storage_cluster.manager.sessionmaker, "admin", PASSWORD)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        user = WebUser(storage_cluster.manager.url, http)
        await user.login("admin")
        yield user


async def test_relay_uploads_lists_downloads_and_refuses(storage_cluster: LiveCluster, web: WebUser) -> None:
    import json

    status, _, body = await web.call("POST", f"{API}/vfolders", json={"name": "relayed"})
    assert status == 201, body
    host = json.loads(body)["host"]
    proxy = host.split(":")[0]
    status, _, body = await web.call("POST", f"{API}/vfolders/relayed/token", json={"permission": "rw"})
    assert status == 200, body
    token = json.loads(body)
    base = f"{API}/storage-proxies/{proxy}/client/v1/vfolders/{token['vfid']}"
    bearer = {"Authorization": f"Bearer {token['token']}"}
    tus = {**bearer, "Tus-Resumable": "1.0.0"}

    payload = b"0123456789" * 100_000  # 1 MB
    meta = "path " + base64.b64encode(b"dir/data.bin").decode()
    status, headers, body = await web.call(
        "POST", f"{base}/uploads", headers={**tus, "Upload-Length": str(len(payload)), "Upload-Metadata": meta})
    assert status == 201, body
    location = headers["Location"]
    assert location.startswith(f"{API}/storage-proxies/{proxy}/client/v1/vfolders/{token['vfid']}/uploads/")
    half = len(payload) // 2
    patch = {**tus, "Content-Type": "application/offset+octet-stream"}
    status, headers, _ = await web.call("PATCH", location, headers={**patch, "Upload-Offset": "0"}, data=payload[:half])
    assert status == 204 and headers["Upload-Offset"] == str(half)
    status, headers, _ = await web.call("HEAD", location, headers=tus)
    assert status == 200 and headers["Upload-Offset"] == str(half) and headers["Upload-Length"] == str(len(payload))
    status, headers, _ = await web.call("PATCH", location, headers={**patch, "Upload-Offset": str(half)},
                                        data=payload[half:])
    assert status == 204 and headers["Upload-Offset"] == str(len(payload))

    status, _, body = await web.call("GET", f"{base}/files?path=dir", headers=bearer)
    assert status == 200, body
    entries = json.loads(body)["entries"]
    assert [(e["name"], e["size"]) for e in entries] == [("data.bin", len(payload))]

    # A plain link: the token in the query, the cookie sent by the browser.
    status, headers, body = await web.call("GET", f"{base}/download?path=dir/data.bin&token={token['token']}")
    assert status == 200 and body == payload
    status, _, body = await web.call("GET", f"{base}/archive?path=dir&token={token['token']}")
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("dir/data.bin")
        assert member is not None and member.read() == payload

    status, _, body = await web.call("POST", f"{base}/mkdir", headers=bearer, json={"path": "made"})
    assert status == 201, body

    # Refusals: no web session; no CSRF token on a write; a read-only token writing; an unknown proxy.
    status, _, _ = await web.call("GET", f"{base}/files", headers=bearer, cookie=False)
    assert status == 401
    status, _, _ = await web.call("POST", f"{base}/mkdir", headers=bearer, csrf=False, json={"path": "x"})
    assert status == 403
    status, _, body = await web.call("POST", f"{API}/vfolders/relayed/token", json={"permission": "ro"})
    ro = {"Authorization": f"Bearer {json.loads(body)['token']}"}
    status, _, _ = await web.call("POST", f"{base}/mkdir", headers=ro, json={"path": "y"})
    assert status == 403
    status, _, _ = await web.call("GET", f"{API}/storage-proxies/nope/client/v1/vfolders/x/files", headers=bearer)
    assert status == 404
