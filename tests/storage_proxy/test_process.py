"""The proxy as a real process (``python -m corral.storage_proxy --config F``)."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from corral.client.storage import StorageClient
from corral.client.upload_state import UploadStateStore
from corral.common.vfolder_token import issue_vfolder_token
from corral.storage_proxy.config import StorageProxyConfig
from corral.storage_proxy.server import run
from tests.fixtures import free_port

from .conftest import JWT_SECRET, MANAGER_SECRET, make_config


def _write_config(path: Path, volume: Path, manager_port: int, client_port: int, extra: str = "") -> None:
    path.write_text(f"""
manager_secret = "{MANAGER_SECRET}"
jwt_secret = "{JWT_SECRET}"
proxy_name = "proc-proxy"
owner_uid = {os.getuid()}
owner_gid = {os.getgid()}

[manager_api]
host = "127.0.0.1"
port = {manager_port}

[client_api]
host = "127.0.0.1"
port = {client_port}

[[volumes]]
name = "vol1"
path = "{volume}"
{extra}
""")


async def _wait_healthy(url: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"proxy exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                async with session.get(f"{url}/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never became healthy")


async def test_real_process_serves_both_apis_on_their_ports(tmp_path: Path) -> None:
    manager_port, client_port = free_port(), free_port()
    config_file = tmp_path / "storage.toml"
    _write_config(config_file, tmp_path / "vol1", manager_port, client_port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral.storage_proxy", "--config", str(config_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    manager_url, client_url = f"http://127.0.0.1:{manager_port}", f"http://127.0.0.1:{client_port}"
    try:
        await _wait_healthy(manager_url, proc)
        await _wait_healthy(client_url, proc)
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {MANAGER_SECRET}"}
            async with session.post(f"{manager_url}/manager/v1/vfolders", json={"volume": "vol1", "vfid": "pv1"}, headers=headers) as resp:
                assert resp.status == 201
            # the manager API is not served on the client port, and vice versa
            async with session.get(f"{client_url}/manager/v1/volumes", headers=headers) as resp:
                assert resp.status == 404
            token = issue_vfolder_token(JWT_SECRET, vfolder_id="pv1", volume="vol1", user="u", permission="rw")
            client = StorageClient(client_url, token, session=session, state_store=UploadStateStore(tmp_path / "state"))
            local = tmp_path / "f.bin"
            local.write_bytes(os.urandom(50_000))
            await client.upload_file(local, "f.bin")
            await client.download_file("f.bin", tmp_path / "back.bin")
            assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()
            async with session.get(f"{manager_url}/client/v1/vfolders/pv1/files", headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""


def test_bad_config_exits_with_a_message(tmp_path: Path) -> None:
    config_file = tmp_path / "bad.toml"
    config_file.write_text('manager_secret = "short"\n')
    proc = subprocess.run([sys.executable, "-m", "corral.storage_proxy", "--config", str(config_file)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "jwt_secret" in proc.stderr and "volumes" in proc.stderr


def test_env_overrides_config(tmp_path: Path) -> None:
    from corral.storage_proxy.config import load_storage_config

    config_file = tmp_path / "storage.toml"
    _write_config(config_file, tmp_path / "v", 1, 2)
    config = load_storage_config(config_file, environ={"CORRAL_STORAGE_WALK_WORKERS": "7", "CORRAL_STORAGE_CLIENT_API__PORT": "9999"})
    assert config.walk_workers == 7 and config.client_api.port == 9999
    assert isinstance(config, StorageProxyConfig)


@pytest.mark.etcd
async def test_registers_presence_in_etcd(tmp_path: Path, etcd_endpoint: str) -> None:
    import aetcd

    config = make_config(
        tmp_path / "vol",
        manager_api={"host": "127.0.0.1", "port": free_port()},
        client_api={"host": "127.0.0.1", "port": free_port(), "public_url": "http://storage.test:6022"},
        etcd={"endpoints": [etcd_endpoint], "lease_ttl_s": 5},
    )
    stop = asyncio.Event()
    server = asyncio.ensure_future(run(config, stop=stop))
    host, port = etcd_endpoint.rsplit(":", 1)
    client = aetcd.Client(host=host, port=int(port))
    key = b"/corral/storage/test-proxy"
    try:
        deadline = time.monotonic() + 15
        value = None
        while time.monotonic() < deadline and value is None:
            got = await client.get(key)
            value = got.value if got else None
            await asyncio.sleep(0.1)
        assert value is not None
        doc = json.loads(value)
        assert doc["client_url"] == "http://storage.test:6022"
        assert doc["volumes"] == [{"name": "local", "backend": "vfs"}]
    finally:
        stop.set()
        await server
    got = await client.get(key)
    assert got is None  # lease revoked at shutdown
    await client.close()


async def test_etcd_down_does_not_stop_the_proxy(tmp_path: Path) -> None:
    port = free_port()
    config = make_config(
        tmp_path / "vol",
        manager_api={"host": "127.0.0.1", "port": port},
        client_api={"host": "127.0.0.1", "port": port},
        etcd={"endpoints": [f"127.0.0.1:{free_port()}"]},
    )
    stop = asyncio.Event()
    server = asyncio.ensure_future(run(config, stop=stop))
    try:
        await _wait_healthy(f"http://127.0.0.1:{port}")
    finally:
        stop.set()
        await asyncio.wait_for(server, 20)
