"""A session's services through the manager: states, TCP tunnels, the browser app proxy, and refusals.

Real containers; the images declare their services in labels; no port is ever published."""
from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess

import aiodocker
import aiohttp
import pytest

from corral.common.errors import Conflict, InvalidRequest, NotFound, SessionServiceFailed

from .cluster import BASE_IMAGE, LiveCluster

pytestmark = [pytest.mark.docker]

APP_IMAGE = "corral-test/services:1"
WEB = {"command": ["python3", "{home}/app.py", "{port}", "{base_url}"], "start": "lazy", "ready_path": "{base_url}"}
# What the test writes into the session before the (lazy) app first starts: answers with what it saw.
APP = """
import hashlib, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Echo(BaseHTTPRequestHandler):
    def answer(self, doc):
        body = json.dumps(doc).encode()
        self.send_response(200 if self.path.startswith(sys.argv[2]) else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "app_own=1; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer({"path": self.path, "headers": dict(self.headers)})

    def do_POST(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self.answer({"length": len(data), "sha256": hashlib.sha256(data).hexdigest()})

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
"""
COUNT = {"command": ["python3", "{home}/count.py", "{port}"], "start": "lazy"}
# Reads until EOF, then answers how many bytes and their sha256: needs the client's half-close.
COUNT_PY = """
import hashlib, socket, sys
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    connection, _ = server.accept()
    digest, total = hashlib.sha256(), 0
    while data := connection.recv(1 << 20):
        digest.update(data)
        total += len(data)
    connection.sendall(("%d %s" % (total, digest.hexdigest())).encode())
    connection.close()
"""
BROKEN = {"command": ["sh", "-c", "echo 'missing settings file /etc/app.toml' >&2; exit 7"], "start": "boot"}


@pytest.fixture(scope="module")
def app_image(base_image: str) -> str:
    labels = {
        "ai.corral.services": "web:http:8000,broken:tcp:9000,sshd:tcp:2200,count:tcp:9100",
        "ai.corral.service.count": json.dumps(COUNT),
        "ai.corral.service.web": json.dumps(WEB),
        "ai.corral.service.broken": json.dumps(BROKEN),
    }
    dockerfile = f"FROM {base_image}\n" + "".join(f"LABEL {k}={json.dumps(v)}\n" for k, v in labels.items())
    subprocess.run(["docker", "build", "-q", "-t", APP_IMAGE, "-"], input=dockerfile.encode(), check=True,
                   capture_output=True, timeout=120)
    return APP_IMAGE


async def running(client, image: str = BASE_IMAGE):  # type: ignore[no-untyped-def]
    session = await client.create_session(image=image, resources={"mem": "256m"})
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
    return session


async def test_sshd_is_ready_and_a_tunnel_reaches_it(cluster: LiveCluster) -> None:
    client = cluster.client()
    session = await running(client)
    services = {s.name: s for s in await client.services(session.id)}
    assert services["terminal"].protocol == "pty"
    for _ in range(50):
        if services["sshd"].state == "ready":
            break
        await asyncio.sleep(0.1)
        services = {s.name: s for s in await client.services(session.id)}
    assert services["sshd"].state == "ready" and services["sshd"].port == 2200
    tunnel = await client.open_tunnel(session.id, "sshd")
    banner = await asyncio.wait_for(tunnel.receive(), 10)
    assert banner.startswith(b"SSH-2.0-OpenSSH")
    await tunnel.close()
    info = await client.get_session(session.id)
    assert info.ssh is not None and info.ssh.user == "work" and info.ssh.host_key.startswith("ssh-ed25519 ")
    assert info.ssh.host_key_alias == f"corral-{session.id}"
    async with aiodocker.Docker() as docker:
        details = await (await docker.containers.get(info.kernels[0].container_id)).show()
    assert not details["HostConfig"].get("PortBindings") and not details["NetworkSettings"].get("Ports")
    await client.destroy_session(session.id)


async def test_refusals_say_why(cluster: LiveCluster, app_image: str) -> None:
    client = cluster.client()
    session = await running(client, app_image)
    with pytest.raises(NotFound, match="this session has: broken, count, sshd, web"):
        await client.open_tunnel(session.id, "nope")
    with pytest.raises(SessionServiceFailed, match="exited with code 7") as failed:
        await client.open_tunnel(session.id, "broken")
    assert "missing settings file" in failed.value.extra["log_tail"]
    with pytest.raises(InvalidRequest, match="not a TCP service"):
        await client.open_tunnel(session.id, "terminal")
    access, secret = await cluster.add_user("mallory")
    with pytest.raises(NotFound):
        await cluster.client(access, secret).services(session.id)
    with pytest.raises(NotFound):
        await cluster.client(access, secret).open_tunnel(session.id, "sshd")
    async with aiohttp.ClientSession() as anonymous:  # a websocket without a valid signature
        url = f"{cluster.manager.url}/api/v1/sessions/{session.id}/services/sshd/tcp"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await anonymous.ws_connect(url)
        assert refused.value.status == 401
    await client.destroy_session(session.id)
    await client.wait_for_status(session.id, {"TERMINATED"}, timeout=30)
    with pytest.raises(Conflict, match="not RUNNING"):
        await client.services(session.id)


async def test_the_app_proxy_logs_a_browser_in_with_a_one_time_link(cluster: LiveCluster, app_image: str) -> None:
    client = cluster.client()
    session = await running(client, app_image)
    await client.execute_collect(session.id, f"open('/home/work/app.py', 'w').write({APP!r})")
    link = await client.app_url(session.id, "web")
    base = f"{cluster.manager.url}/api/v1/sessions/{session.id}/services/web/http/"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(f"{base}x") as anonymous:
            assert anonymous.status == 401
            assert anonymous.headers["Content-Type"].startswith("application/problem+json")
        async with browser.get(link) as first:
            assert first.status == 200, await first.text()  # the lazy app started on the way
            assert str(first.url) == base  # redirected without the token
        async with browser.get(f"{base}some/page?q=a%20b", headers={"Authorization": "Bearer mine"}) as page:
            seen = await page.json()
        assert seen["path"] == f"/api/v1/sessions/{session.id}/services/web/http/some/page?q=a%20b"
        assert "corral_app" not in seen["headers"].get("Cookie", "")  # Corral's cookie stays with Corral
        assert "app_own=1" in seen["headers"].get("Cookie", "")  # the app's own cookies pass
        assert "Authorization" not in seen["headers"]
        assert seen["headers"]["X-Forwarded-Proto"] == "http"
        payload = bytes(range(256)) * 8192  # 2 MiB, streamed through both hops
        async with browser.post(f"{base}upload", data=payload) as upload:
            assert await upload.json() == {"length": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
        cookie = next(c for c in browser.cookie_jar if c.key == "corral_app")
        assert cookie["httponly"] and cookie["path"] == f"/api/v1/sessions/{session.id}/services/"
        assert cookie["samesite"] == "Lax"
        async with browser.get(link, allow_redirects=False) as replay:
            assert replay.status == 401  # one-time
    async with aiohttp.ClientSession() as other:
        async with other.get(link) as used:
            assert used.status == 401
        forged = base + "?corral_token=" + link.split("corral_token=")[1][:-4] + "AAAA"
        async with other.get(forged) as bad:
            assert bad.status == 401
    access, secret = await cluster.add_user("eve")
    with pytest.raises(NotFound):
        await cluster.client(access, secret).app_url(session.id, "web")
    with pytest.raises(InvalidRequest, match="speaks tcp"):
        await client.app_url(session.id, "sshd")
    await client.destroy_session(session.id)


async def test_an_agent_restart_mid_tunnel_is_a_clear_loss_and_the_session_carries_on(cluster: LiveCluster) -> None:
    from corral.agent.server import AgentServer
    from corral.common.errors import ServiceUnavailable

    client = cluster.client()
    session = await running(client)
    tunnel = await client.open_tunnel(session.id, "sshd")
    assert (await asyncio.wait_for(tunnel.receive(), 10)).startswith(b"SSH-2.0-")
    old = cluster.agents.pop()
    await old.stop()  # the session's container stays up
    with pytest.raises(ServiceUnavailable, match="connection to the session was lost"):
        async with asyncio.timeout(20):
            while await tunnel.receive():
                pass
    restarted = AgentServer(cluster.agent_config("a1"))
    await restarted.start()
    cluster.agents.append(restarted)
    again = await client.open_tunnel(session.id, "sshd")  # killing a tunnel never kills the session
    assert (await asyncio.wait_for(again.receive(), 10)).startswith(b"SSH-2.0-")
    await again.close()
    assert (await client.get_session(session.id)).status == "RUNNING"
    await client.destroy_session(session.id)


async def test_a_tunnel_carries_a_half_close_and_bulk_bytes(cluster: LiveCluster, app_image: str) -> None:
    client = cluster.client()
    session = await running(client, app_image)
    await client.execute_collect(session.id, f"open('/home/work/count.py', 'w').write({COUNT_PY!r})")
    tunnel = await client.open_tunnel(session.id, "count")
    payload = bytes(range(256)) * (40 * 4096)  # 40 MiB
    for start in range(0, len(payload), 1 << 20):
        await tunnel.send(payload[start:start + (1 << 20)])
    await tunnel.send_eof()
    answer = b""
    async with asyncio.timeout(60):
        while chunk := await tunnel.receive():
            answer += chunk
    assert answer.decode() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"
    await client.destroy_session(session.id)


async def test_corral_app_serves_a_service_on_a_local_port(cluster: LiveCluster, app_image: str, tmp_path) -> None:
    import os
    import socket
    import sys

    from corral.client.config import ClientConfig, write_client_config

    client = cluster.client()
    session = await running(client, app_image)
    await client.execute_collect(session.id, f"open('/home/work/app.py', 'w').write({APP!r})")
    config = write_client_config(tmp_path / "client.toml", ClientConfig(
        cluster.manager.url, cluster.admin_access_key, cluster.admin_secret_key))
    env = {**os.environ, "CORRAL_CONFIG": str(config)}
    corral = [sys.executable, "-c", "from corral.client.cli.entry import main; main()"]
    listed = await asyncio.to_thread(subprocess.run, [*corral, "app", session.id, "--json"], env=env,
                                     capture_output=True, timeout=60)
    assert {s["name"]: s["state"] for s in json.loads(listed.stdout)}["broken"] == "failed"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = await asyncio.create_subprocess_exec(
        *corral, "app", session.id, "web", "-b", f"127.0.0.1:{port}", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        url = (await asyncio.wait_for(app.stdout.readline(), 60)).decode().strip()
        assert url == f"http://127.0.0.1:{port}/api/v1/sessions/{session.id}/services/web/http/"
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "via-app") as page:
                assert page.status == 200 and (await page.json())["path"].endswith("/via-app")
    finally:
        app.terminate()
        await app.wait()
    assert (await client.get_session(session.id)).status == "RUNNING"  # killing a tunnel never kills the session
    failed = await asyncio.to_thread(subprocess.run, [*corral, "app", session.id, "broken"], env=env,
                                     capture_output=True, timeout=60)
    lines = failed.stderr.decode().splitlines()
    assert failed.returncode == 1 and lines[-1].startswith("error: service 'broken' is not available")
    assert "  missing settings file /etc/app.toml" in lines  # its log tail, before the error
    await client.destroy_session(session.id)


async def test_a_browser_signed_in_as_someone_else_may_not_open_an_app(
    cluster: LiveCluster, app_image: str,
) -> None:
    from corral.manager.passwords import set_user_password

    client = cluster.client()
    session = await running(client, app_image)
    await client.execute_collect(session.id, f"open('/home/work/app.py', 'w').write({APP!r})")
    await cluster.add_user("eve")
    await set_user_password(cluster.manager.sessionmaker, "eve", "eve-password-1")
    await set_user_password(cluster.manager.sessionmaker, "admin", "admin-password-1")
    base = cluster.manager.url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as eve:
        async with eve.post(f"{base}/api/v1/auth/login", json={"username": "eve", "password": "eve-password-1"}) as r:
            assert r.status == 200
        async with eve.get(await client.app_url(session.id, "web")) as refused:  # the admin's link, eve's browser
            assert refused.status == 403 and "signed in to Corral as eve" in (await refused.json())["detail"]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as owner:
        async with owner.post(f"{base}/api/v1/auth/login",
                              json={"username": "admin", "password": "admin-password-1"}) as r:
            assert r.status == 200
        async with owner.get(await client.app_url(session.id, "web")) as page:
            assert page.status == 200
        async with owner.get(f"{base}/api/v1/sessions/{session.id}/services/web/http/echo") as page:
            cookies = (await page.json())["headers"].get("Cookie", "")
        assert "corral_session" not in cookies and "corral_app" not in cookies  # never handed to the app
    await client.destroy_session(session.id)
