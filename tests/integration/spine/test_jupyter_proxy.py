"""JupyterLab through the manager's app proxy, as a browser uses it: a one-time link, then the cookie for
the REST API, a notebook kernel executing code over its websocket (Jupyter's messaging protocol), the
file browser's contents API and a terminal."""
from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import pytest

from corral.kernels.builder import build_image

from .cluster import LiveCluster

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

JUPYTER_IMAGE = "corral/jupyter:latest"


@pytest.fixture(scope="module")
def jupyter_image(base_image: str) -> str:
    asyncio.run(build_image("jupyter"))
    return JUPYTER_IMAGE


def execute_request(code: str, session: str) -> dict[str, Any]:
    msg_id = uuid.uuid4().hex
    return {
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": session,
                   "date": "", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }


async def test_jupyterlab_works_through_the_proxy(cluster: LiveCluster, jupyter_image: str) -> None:
    client = cluster.client()
    session = await client.create_session(image=jupyter_image, resources={"mem": "1g"})
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=120)
    link = await client.app_url(session.id, "jupyterlab")
    base = f"{cluster.manager.url}/api/v1/sessions/{session.id}/services/jupyterlab/http/"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(link) as landing:  # waits for JupyterLab to be ready, then its own redirect
            assert landing.status == 200, await landing.text()
            assert "JupyterLab" in await landing.text() or "jupyter" in (await landing.text()).lower()
        async with browser.get(f"{base}api/status") as status:
            assert status.status == 200 and "started" in await status.json()
        services = {s.name: s for s in await client.services(session.id)}
        assert services["jupyterlab"].state == "ready"
        assert services["jupyterlab"].http_path == f"/api/v1/sessions/{session.id}/services/jupyterlab/http/"

        # The file browser: write a file, read it back.
        async with browser.put(f"{base}api/contents/hello.txt",
                               json={"type": "file", "format": "text", "content": "hi from the proxy"}) as put:
            assert put.status in (200, 201), await put.text()
        async with browser.get(f"{base}api/contents/hello.txt?content=1") as got:
            assert (await got.json())["content"] == "hi from the proxy"

        # A notebook kernel: start it, execute over its websocket channel.
        async with browser.post(f"{base}api/kernels", json={"name": "python3"}) as started:
            assert started.status == 201, await started.text()
            kernel_id = (await started.json())["id"]
        ws_url = f"{base}api/kernels/{kernel_id}/channels".replace("http://", "ws://")
        async with browser.ws_connect(ws_url) as channel:
            request = execute_request("import os; print(6 * 7, os.getuid())", uuid.uuid4().hex)
            await channel.send_str(json.dumps(request))
            output, reply, idle = "", None, False
            async with asyncio.timeout(60):
                async for message in channel:
                    doc = json.loads(message.data)
                    if doc.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
                        continue
                    if doc["msg_type"] == "stream":
                        output += doc["content"]["text"]
                    if doc["msg_type"] == "execute_reply":
                        reply = doc["content"]
                    # The reply (shell) and the output (iopub) are not ordered; iopub's idle comes after the output.
                    if doc["msg_type"] == "status" and doc["content"].get("execution_state") == "idle":
                        idle = True
                    if reply is not None and idle:
                        break
            assert reply is not None and reply["status"] == "ok"
            assert output.strip() == "42 1000"

        # A terminal, as JupyterLab's terminal tab uses it.
        async with browser.post(f"{base}api/terminals") as made:
            assert made.status == 200, await made.text()
            name = (await made.json())["name"]
        async with browser.ws_connect(f"{base}terminals/websocket/{name}".replace("http://", "ws://")) as term:
            await term.send_str(json.dumps(["stdin", "echo proxied-$((40+2))\r"]))
            seen = ""
            async with asyncio.timeout(30):
                async for message in term:
                    kind, *rest = json.loads(message.data)
                    if kind == "stdout":
                        seen += rest[0]
                        if "proxied-42" in seen:
                            break
    await client.destroy_session(session.id)
