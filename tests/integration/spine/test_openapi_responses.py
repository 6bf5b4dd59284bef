"""Every answer of a live manager fits the OpenAPI document it serves; no Docker needed.

A real manager (SQLite, or PostgreSQL), an in-process storage proxy and an
agent on the dummy backend with two mock GPUs. Each response body — every
NDJSON line and every server-sent event's data too — is validated with
``jsonschema`` against the schema the document gives for its route, status
and media type, with objects closed: a property the document does not name
fails. At the end every success status the document lists has been seen.
"""
from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from jsonschema import Draft202012Validator

from corral.agent.backend.dummy import DummyBackend
from corral.agent.server import AgentServer
from corral.common.signing import sign_request

from .cluster import LiveCluster, wait_for

GPU_TOPOLOGY = Path(__file__).resolve().parents[3] / "configs" / "gpus" / "mock-2gpu.toml"
FAKE_IMAGES = [{"name": "corral/python:latest", "image_id": "sha256:" + "ab" * 32, "size": 123456,
                "labels": {"ai.corral.runner": "1"}}]
Keys = tuple[str, str]


def _closed(schema: Any) -> Any:
    """The schema with every object that names its properties refusing others (unless it allows them)."""
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if "properties" in closed and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


def _sse_events(text: str) -> list[tuple[str, str]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "data" in fields:
            events.append((fields.get("event", "message"), fields["data"]))
    return events


class DocumentedApi:
    """Signed calls by route template; each answer is checked against the document."""

    def __init__(self, cluster: LiveCluster, document: dict[str, Any], http: aiohttp.ClientSession) -> None:
        self.base = cluster.manager.url
        self.admin: Keys = (cluster.admin_access_key, cluster.admin_secret_key)
        self.document = document
        self.components = _closed(document["components"])
        self.http = http
        self.seen: set[tuple[str, str, int]] = set()

    async def call(self, method: str, template: str, *, status: int, body: Any = None,
                   query: dict[str, str] | None = None, keys: Keys | None = None, sign: bool = True,
                   headers: dict[str, str] | None = None, **params: str) -> Any:
        path = template.format(**{name: quote(value, safe="") for name, value in params.items()})
        path_qs = path + (f"?{urlencode(query)}" if query else "")
        data = b"" if body is None else json.dumps(body).encode()
        headers = {**({"Content-Type": "application/json"} if body is not None else {}), **(headers or {})}
        if sign:
            headers.update(sign_request(*(keys or self.admin), method, path_qs, data))
        async with self.http.request(method, self.base + path_qs, data=data or None, headers=headers) as response:
            text = await response.text()
            media_type = response.content_type
            self.last_headers = response.headers
        what = f"{method} {path_qs} -> {response.status}"
        assert response.status == status, f"{what}, not {status}: {text[:300]}"
        self.seen.add((method, template, status))
        return self._check(method, template, status, media_type, text, what)

    def _check(self, method: str, template: str, status: int, media_type: str, text: str, what: str) -> Any:
        operation = self.document["paths"][template][method.lower()]
        documented = operation["responses"].get(str(status))
        assert documented is not None, f"{what}: status not in the document"
        content = documented.get("content")
        if not content:
            assert text == "", f"{what}: a body where the document says none"
            return None
        assert media_type in content, f"{what}: {media_type} is not one of {sorted(content)}"
        media = content[media_type]
        if "x-item-schema" not in media:
            doc = json.loads(text)
            self._validate(media["schema"], doc, what)
            return doc
        if media_type == "text/event-stream":
            items = [(event, json.loads(data)) for event, data in _sse_events(text)]
        else:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        for item in items:
            self._validate(media["x-item-schema"], item[1] if isinstance(item, tuple) else item, what)
        return items

    def _validate(self, schema: dict[str, Any], instance: Any, what: str) -> None:
        # The document's components travel with the schema, so its "#/components/..." refs resolve.
        root = {**copy.deepcopy(schema), "components": self.components}
        validator = Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        assert not errors, f"{what}: " + "; ".join(
            f"at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
        )

    def documented_successes(self) -> set[tuple[str, str, int]]:
        return {
            (method.upper(), path, int(code))
            for path, operations in self.document["paths"].items()
            for method, operation in operations.items()
            for code in operation["responses"]
            if 200 <= int(code) < 400  # 101 (websocket upgrades) has no body to check; tests of its own cover it
        }


@pytest.fixture
async def api(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DocumentedApi]:
    async def list_images(self: DummyBackend) -> list[dict[str, Any]]:
        return FAKE_IMAGES

    monkeypatch.setattr(DummyBackend, "list_images", list_images)
    cluster = LiveCluster(db_url=db_url)
    await cluster.start_storage()
    await cluster.start_manager()
    # Not cluster.start_agent: its teardown asks Docker for leftover containers.
    agent = AgentServer(cluster.agent_config(
        "dummy", backend="dummy", gpu={"plugin": "mock", "topology": str(GPU_TOPOLOGY)},
    ))
    await agent.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{cluster.manager.url}/api/v1/openapi.json") as response:
                document = await response.json()
            for schema in document["components"]["schemas"].values():
                Draft202012Validator.check_schema(schema)
            yield DocumentedApi(cluster, document, http)
    finally:
        await agent.stop()
        await cluster.stop()


S = "/api/v1/sessions/{ref}"
VF = "/api/v1/vfolders/{ref}"
PJ = "/api/v1/projects/{name}"


async def _until(api: DocumentedApi, ref: str, statuses: set[str]) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        session = await api.call("GET", S, status=200, ref=ref)
        return session if session["status"] in statuses else None

    return await wait_for(reached, timeout=30)


async def _list_events(api: DocumentedApi, bob: Keys) -> None:
    """The list-level stream never ends by itself: read it until one status event, then hang up."""
    template = "/api/v1/sessions/events"
    headers = sign_request(*api.admin, "GET", template, b"")
    async with asyncio.timeout(20):
        async with api.http.get(api.base + template, headers=headers) as response:
            assert response.status == 200, await response.text()
            assert (await response.content.readline()).startswith(b": subscribed")
            await response.content.readline()
            # Subscribed: a change now must come through (PENDING: no agent in that resource group).
            made = await api.call("POST", "/api/v1/sessions", status=201, body={"resource_group": "nowhere"})
            text = ""
            while "data: " not in text or not text.endswith("\n\n"):
                text += (await response.content.readline()).decode()
            media_type = response.content_type
    api.seen.add(("GET", template, 200))
    events = api._check("GET", template, 200, media_type, text, f"GET {template} -> 200")
    assert events == [("status", {"session_id": made["id"], "status": "PENDING", "reason": events[0][1]["reason"],
                                  "at": events[0][1]["at"]})]
    await api.call("DELETE", S, status=200, ref=made["id"])
    await api.call("GET", template, status=403, query={"all_users": "1"}, keys=bob)


async def _sessions(api: DocumentedApi, bob: Keys) -> None:
    await _list_events(api, bob)
    created = await api.call("POST", "/api/v1/sessions", status=201, body={
        "name": "documented", "env": {"A": "1"}, "resources": {"cpu": "1", "mem": "64m", "cuda.shares": "0.5"},
    })
    ref = created["id"]
    running = await _until(api, ref, {"RUNNING"})
    assert running["kernels"][0]["allocation"]["gpus"] and running["status_history"]
    page = await api.call("GET", "/api/v1/sessions", status=200, query={"all": "1", "limit": "1"})
    assert "status_history" not in page["items"][0]
    lines = await api.call("POST", f"{S}/execute", status=200, body={"code": "print(1)"}, ref=ref)
    assert lines[-1]["op"] == "result"
    await api.call("GET", f"{S}/logs", status=200, ref=ref)
    assert await api.call("POST", f"{S}/interrupt", status=200, ref=ref) == {"interrupted": False}  # idle
    await api.call("DELETE", S, status=202, ref=ref)
    await _until(api, ref, {"TERMINATED"})
    events = await api.call("GET", f"{S}/events", status=200, ref=ref)
    assert events[-1][1]["status"] == "TERMINATED"
    await api.call("DELETE", S, status=200, ref=ref)

    # No agent in this resource group: it stays PENDING, so destroying it cancels it at once.
    waiting = await api.call("POST", "/api/v1/sessions", status=201, body={"resource_group": "nowhere"})
    cancelled = await api.call("DELETE", S, status=200, ref=waiting["id"])
    assert cancelled["status"] == "CANCELLED"

    await api.call("GET", S, status=404, ref="no-such-session")
    await api.call("POST", "/api/v1/sessions", status=400, body={"imagee": "x"})
    await api.call("GET", "/api/v1/sessions", status=401, sign=False)
    await api.call("GET", "/api/v1/agents", status=403, keys=bob)


async def _vfolders(api: DocumentedApi, bob: Keys) -> None:
    hosts = await api.call("GET", "/api/v1/storage/hosts", status=200)
    assert any(h.get("default") for h in hosts["items"])
    created = await api.call("POST", "/api/v1/vfolders", status=201, body={"name": "data", "quota": "1g"})
    ref = created["id"]
    await api.call("GET", "/api/v1/vfolders", status=200)
    info = await api.call("GET", VF, status=200, ref=ref)
    assert "usage" in info and "over_quota" in info
    assert "usage" not in await api.call("GET", VF, status=200, query={"usage": "0"}, ref=ref)
    await api.call("PATCH", VF, status=200, body={"name": "data2", "unlimited": True}, ref=ref)
    shared = await api.call("POST", f"{VF}/shares", status=200, body={"username": "bob", "permission": "ro"}, ref=ref)
    assert shared["shared_with"] == [{"username": "bob", "permission": "ro"}]
    await api.call("POST", f"{VF}/token", status=200, body={"permission": "rw"}, ref=ref)
    await api.call("POST", f"{VF}/token", status=403, body={"permission": "rw"}, keys=bob, ref=ref)
    await api.call("DELETE", f"{VF}/shares/{{username}}", status=204, keys=bob, ref=ref, username="bob")
    await api.call("POST", f"{VF}/shares", status=200, body={"username": "bob"}, ref=ref)
    await api.call("DELETE", f"{VF}/shares/{{username}}", status=200, ref=ref, username="bob")
    await api.call("DELETE", VF, status=200, ref=ref)
    await api.call("GET", "/api/v1/vfolders", status=200, query={"trashed": "1"})
    await api.call("POST", f"{VF}/restore", status=200, ref=ref)
    await api.call("DELETE", VF, status=200, ref=ref)
    purged = await api.call("POST", f"{VF}/purge", status=200, ref=ref)
    assert purged["status"] == "purged"
    await api.call("GET", VF, status=404, ref=ref)


async def _projects(api: DocumentedApi, bob: Keys) -> None:
    await api.call("POST", "/api/v1/projects", status=201, body={"name": "ml", "description": "models"})
    await api.call("POST", "/api/v1/projects", status=409, body={"name": "ml"})
    await api.call("GET", "/api/v1/projects", status=200)
    await api.call("POST", f"{PJ}/members", status=201, body={"username": "bob", "role": "manager"}, name="ml")
    project = await api.call("GET", PJ, status=200, keys=bob, name="ml")
    assert project["role"] == "manager" and project["members"]
    await api.call("POST", "/api/v1/vfolders", status=201, body={"name": "shared", "project": "ml"}, keys=bob)
    assert (await api.call("GET", PJ, status=200, name="ml"))["vfolders"]
    await api.call("PATCH", f"{PJ}/members/{{username}}", status=200, body={"role": "member"}, name="ml",
                   username="bob")
    await api.call("DELETE", f"{PJ}/members/{{username}}", status=204, keys=bob, name="ml", username="bob")
    await api.call("POST", f"{PJ}/members", status=201, body={"username": "bob"}, name="ml")
    await api.call("DELETE", f"{PJ}/members/{{username}}", status=200, name="ml", username="bob")
    await api.call("GET", PJ, status=404, keys=bob, name="ml")
    changed = await api.call("PATCH", PJ, status=200, body={"fair_share": 2, "resource_policy": None}, name="ml")
    assert changed["fair_share"] == 2 and changed["resource_policy"] is None
    await api.call("PATCH", PJ, status=422, body={"resource_policy": "nope"}, name="ml")
    await api.call("PATCH", PJ, status=403, body={"fair_share": 1}, keys=bob, name="ml")


RG = "/api/v1/resource-groups"
RP = "/api/v1/resource-policies"


async def _scheduling(api: DocumentedApi, bob: Keys) -> None:
    """Resource groups and policies; leaves the group "nowhere" (no agent: its sessions stay PENDING)."""
    made = await api.call("POST", RG, status=201, body={
        "name": "nowhere", "queue_policy": "fair-share", "scorers": ["topology:2", {"name": "dispersed"}],
        "allowed_users": ["bob", "admin"],
    })
    assert made["allowed_users"] == ["bob", "admin"] and made["agents"] == 0
    await api.call("POST", RG, status=409, body={"name": "nowhere"})
    await api.call("POST", RG, status=400, body={"name": "g", "queue_policy": "random"})
    await api.call("POST", RG, status=422, body={"name": "g", "allowed_users": ["nobody"]})
    await api.call("POST", RG, status=403, body={"name": "g"}, keys=bob)
    listed = await api.call("GET", RG, status=200)
    assert [g["name"] for g in listed["items"]] == ["default", "nowhere"]
    theirs = await api.call("GET", RG, status=200, keys=bob)
    assert "allowed_users" not in theirs["items"][0]
    await api.call("GET", f"{RG}/{{name}}", status=200, keys=bob, name="nowhere")
    await api.call("PATCH", f"{RG}/{{name}}", status=200, body={"allowed_users": None, "backfill": False},
                   name="nowhere")
    await api.call("PATCH", f"{RG}/{{name}}", status=422, body={"allowed_projects": ["nope"]}, name="nowhere")
    await api.call("POST", RG, status=201, body={"name": "spare"})
    await api.call("DELETE", f"{RG}/{{name}}", status=200, name="spare")
    await api.call("GET", f"{RG}/{{name}}", status=404, name="spare")
    await api.call("DELETE", f"{RG}/{{name}}", status=409, name="default")

    policy = await api.call("POST", RP, status=201, body={
        "name": "small", "max_pending_sessions": 5, "max_slots": {"mem": "64g", "cuda.shares": "1.5"},
        "max_session_lifetime_s": 3600,
    })
    assert policy["max_slots"] == {"cuda.shares": "1.5", "mem": str(64 << 30)}
    await api.call("POST", RP, status=400, body={"name": "p", "max_slots": {"gpu": 1}})
    await api.call("POST", RP, status=409, body={"name": "small"})
    await api.call("GET", RP, status=200)
    await api.call("GET", RP, status=403, keys=bob)
    await api.call("PATCH", f"{RP}/{{name}}", status=200, body={"max_slots": {"mem": None}}, name="small")
    await api.call("PATCH", "/api/v1/users/{username}", status=422, body={"resource_policy": "nope"},
                   username="bob")
    user = await api.call("PATCH", "/api/v1/users/{username}", status=200,
                          body={"resource_policy": "small", "fair_share": 2}, username="bob")
    assert user["resource_policy"] == "small" and user["fair_share"] == 2
    assert (await api.call("GET", f"{RP}/{{name}}", status=200, name="small"))["users"] == ["bob"]
    await api.call("DELETE", f"{RP}/{{name}}", status=409, name="small")
    await api.call("PATCH", "/api/v1/users/{username}", status=200, body={"resource_policy": None}, username="bob")
    await api.call("DELETE", f"{RP}/{{name}}", status=200, name="small")
    await api.call("GET", f"{RP}/{{name}}", status=404, name="small")

    # Creation refusals.
    await api.call("POST", "/api/v1/sessions", status=404, body={"resource_group": "nope"})
    await api.call("POST", "/api/v1/sessions", status=403, body={"priority": 90}, keys=bob)
    await api.call("POST", "/api/v1/sessions", status=422, body={"resources": {"mem": "900g"}})


# A session's services live in its container's runner, which the dummy backend does not have:
# test_services.py exercises these with real containers (the SDK parses them with the same models);
# the app proxy's answers are the app's own.
SVC = "/api/v1/sessions/{ref}/services"
APP = "/api/v1/sessions/{session_id}/services/{name}/http/{path}"
RELAY = "/api/v1/storage-proxies/{proxy}/client/v1/{tail}"  # the storage proxy's own answers: test_storage_relay.py
NEED_A_RUNNER = {
    *((method, RELAY, 200) for method in ("GET", "POST", "PUT", "PATCH", "DELETE")),
    ("GET", SVC, 200), ("POST", f"{SVC}/{{name}}/start", 200), ("POST", f"{SVC}/{{name}}/app-token", 200),
    *((method, APP, code) for method in ("GET", "POST", "PUT", "PATCH", "DELETE") for code in (200, 303)),
}


async def _ssh_keys(api: DocumentedApi) -> None:
    from corral.common.ssh_keys import generate_ed25519

    line = generate_ed25519("documented").public_line
    added = await api.call("POST", "/api/v1/ssh-keys", status=201, body={"public_key": line})
    await api.call("POST", "/api/v1/ssh-keys", status=409, body={"public_key": line})
    await api.call("POST", "/api/v1/ssh-keys", status=400, body={"public_key": "ssh-ed25519 nope"})
    assert [k["fingerprint"] for k in (await api.call("GET", "/api/v1/ssh-keys", status=200))["items"]] == [
        added["fingerprint"]]
    await api.call("DELETE", "/api/v1/ssh-keys/{ref}", status=200, ref=added["id"])
    await api.call("DELETE", "/api/v1/ssh-keys/{ref}", status=404, ref=added["id"])


async def _web_sign_in(api: DocumentedApi) -> None:
    from http.cookies import SimpleCookie

    await api.call("POST", "/api/v1/users", status=201, body={"username": "webby", "password": "first password"})
    await api.call("POST", "/api/v1/users", status=400, body={"username": "webby2", "password": "short"})
    await api.call("PUT", "/api/v1/users/{username}/password", status=204, body={"password": "web password"},
                   username="webby")
    await api.call("POST", "/api/v1/auth/login", status=401, sign=False,
                   body={"username": "webby", "password": "first password"})
    signed_in = await api.call("POST", "/api/v1/auth/login", status=200, sign=False,
                               body={"username": "webby", "password": "web password"})
    token = SimpleCookie(api.last_headers["Set-Cookie"])["corral_session"].value
    cookie = {"Cookie": f"corral_session={token}"}
    assert await api.call("GET", "/api/v1/auth/session", status=200, sign=False, headers=cookie) == signed_in
    await api.call("GET", "/api/v1/auth/session", status=401, sign=False)
    await api.call("GET", "/api/v1/whoami", status=200, sign=False, headers=cookie)
    await api.call("PATCH", "/api/v1/users/{username}", status=403, sign=False, body={"is_active": False},
                   headers={**cookie, "X-CSRF-Token": signed_in["csrf_token"]}, username="webby")
    user = await api.call("PATCH", "/api/v1/users/{username}", status=200, body={"is_active": True},
                          username="webby")
    assert user["is_active"] and user["has_password"]
    await api.call("POST", "/api/v1/auth/logout", status=403, sign=False, headers=cookie)
    await api.call("POST", "/api/v1/auth/logout", status=204, sign=False,
                   headers={**cookie, "X-CSRF-Token": signed_in["csrf_token"]})
    await api.call("GET", "/api/v1/auth/session", status=401, sign=False, headers=cookie)


async def test_every_answer_fits_the_document(api: DocumentedApi) -> None:
    health = await api.call("GET", "/api/v1/health", status=200, sign=False)
    assert health["status"] == "ok"
    await api.call("GET", "/api/v1/whoami", status=200)
    made = await api.call("POST", "/api/v1/users", status=201, body={"username": "bob"})
    bob = (made["access_key"], made["secret_key"])
    await api.call("POST", "/api/v1/users", status=409, body={"username": "bob"})
    assert {u["username"] for u in (await api.call("GET", "/api/v1/users", status=200))["items"]} >= {"bob"}
    agents = await api.call("GET", "/api/v1/agents", status=200)
    assert [len(a["gpus"]) for a in agents["items"]] == [2] and agents["items"][0]["gpu_links"]
    capacity = await api.call("GET", "/api/v1/capacity", status=200)
    assert [len(n["gpus"]) for n in capacity["nodes"]] == [2] and capacity["nodes"][0]["address"]
    assert "address" not in (await api.call("GET", "/api/v1/capacity", status=200, keys=bob))["nodes"][0]
    await api.call("GET", "/api/v1/capacity", status=404, query={"group": "nope"}, keys=bob)
    await api.call("GET", "/api/v1/capacity", status=400, query={"group": "not a name"})
    assert (await api.call("GET", "/api/v1/queue", status=200, keys=bob))["groups"] == []
    await api.call("GET", "/api/v1/queue", status=404, query={"group": "nope"}, keys=bob)
    await api.call("GET", "/api/v1/queue", status=400, query={"group": "not a name"})
    assert (await api.call("GET", "/api/v1/usage", status=200, keys=bob))["by"] == "user"
    await api.call("GET", "/api/v1/usage", status=400, query={"from": "soon"})
    await api.call("GET", "/api/v1/usage", status=403, query={"user": "admin"}, keys=bob)
    await api.call("GET", "/api/v1/usage", status=404, query={"user": "nobody"})
    images = await api.call("GET", "/api/v1/images", status=200)
    assert [i["name"] for i in images["items"]] == ["corral/python:latest"]

    await _scheduling(api, bob)
    await _sessions(api, bob)
    await _vfolders(api, bob)
    await _projects(api, bob)
    await _ssh_keys(api)
    await _web_sign_in(api)

    unseen = api.documented_successes() - api.seen - NEED_A_RUNNER
    assert not unseen, f"documented success statuses never exercised: {sorted(unseen)}"
