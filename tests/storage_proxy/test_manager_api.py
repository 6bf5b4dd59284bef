"""Manager-facing API: shared-secret auth, vfolder lifecycle, usage, quota, mount path."""
from __future__ import annotations

import pytest

from .conftest import MANAGER_SECRET, VOLUME, Proxy


async def test_requires_the_manager_secret(proxy: Proxy) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {MANAGER_SECRET}"}):
        async with proxy.session.get(f"{proxy.url}/manager/v1/volumes", headers=headers) as resp:
            assert resp.status == 401
            assert resp.content_type == "application/problem+json"
            doc = await resp.json(content_type=None)
            assert doc["type"].endswith("/authentication-failed")


async def test_vfolder_token_does_not_open_the_manager_api(proxy: Proxy, vfid: str) -> None:
    headers = {"Authorization": f"Bearer {proxy.token(vfid)}"}
    async with proxy.session.delete(f"{proxy.url}/manager/v1/vfolders/{VOLUME}/{vfid}", headers=headers) as resp:
        assert resp.status == 401
    assert proxy.host_path(vfid).is_dir()


async def test_lifecycle(proxy: Proxy) -> None:
    h = proxy.manager_headers
    base = f"{proxy.url}/manager/v1"
    async with proxy.session.get(f"{base}/volumes", headers=h) as resp:
        doc = await resp.json()
        assert [v["name"] for v in doc["volumes"]] == [VOLUME]
        assert doc["volumes"][0]["backend"] == "vfs"
    async with proxy.session.post(f"{base}/vfolders", json={"volume": VOLUME, "vfid": "vf-one", "quota_bytes": 1000}, headers=h) as resp:
        assert resp.status == 201
        created = await resp.json()
        assert created["host_path"] == str(proxy.host_path("vf-one"))
    async with proxy.session.post(f"{base}/vfolders", json={"volume": VOLUME, "vfid": "vf-one"}, headers=h) as resp:
        assert resp.status == 409
    (proxy.host_path("vf-one") / "f.txt").write_bytes(b"12345")
    async with proxy.session.get(f"{base}/vfolders/{VOLUME}/vf-one/usage", headers=h) as resp:
        usage = await resp.json()
        assert (usage["files"], usage["bytes"], usage["quota_bytes"]) == (1, 5, 1000)
    async with proxy.session.put(f"{base}/vfolders/{VOLUME}/vf-one/quota", json={"quota_bytes": 2000}, headers=h) as resp:
        assert resp.status == 200
    async with proxy.session.get(f"{base}/vfolders/{VOLUME}/vf-one/quota", headers=h) as resp:
        assert (await resp.json())["quota_bytes"] == 2000
    async with proxy.session.post(f"{base}/vfolders/{VOLUME}/vf-one/clone", json={"dst_vfid": "vf-two"}, headers=h) as resp:
        assert resp.status == 201, await resp.text()
    assert (proxy.host_path("vf-two") / "f.txt").read_bytes() == b"12345"
    async with proxy.session.get(f"{base}/vfolders/{VOLUME}/vf-two/mount", headers=h) as resp:
        assert (await resp.json())["host_path"] == str(proxy.host_path("vf-two"))
    async with proxy.session.get(f"{base}/vfolders/{VOLUME}/vf-two/quota", headers=h) as resp:
        assert (await resp.json())["quota_bytes"] == 2000
    async with proxy.session.delete(f"{base}/vfolders/{VOLUME}/vf-one", headers=h) as resp:
        assert resp.status == 204
    assert not proxy.host_path("vf-one").exists()
    async with proxy.session.get(f"{base}/vfolders/{VOLUME}/vf-one/usage", headers=h) as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"


@pytest.mark.parametrize("vfid", ["..", ".corral", "a/b", "-x", "x" * 200, "a b"])
async def test_bad_vfids_are_refused(proxy: Proxy, vfid: str) -> None:
    async with proxy.session.post(
        f"{proxy.url}/manager/v1/vfolders", json={"volume": VOLUME, "vfid": vfid}, headers=proxy.manager_headers
    ) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"


async def test_unknown_volume_and_bad_body(proxy: Proxy) -> None:
    h = proxy.manager_headers
    async with proxy.session.post(f"{proxy.url}/manager/v1/vfolders", json={"volume": "nope", "vfid": "abc"}, headers=h) as resp:
        assert resp.status == 404
    async with proxy.session.post(f"{proxy.url}/manager/v1/vfolders", data=b"{not json", headers=h) as resp:
        assert resp.status == 400
    async with proxy.session.post(f"{proxy.url}/manager/v1/vfolders", json={"volume": VOLUME, "vfid": "abc", "extra": 1}, headers=h) as resp:
        assert resp.status == 400


async def test_unknown_route_is_problem_json(proxy: Proxy) -> None:
    async with proxy.session.get(f"{proxy.url}/nothing-here") as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
