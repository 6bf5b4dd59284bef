"""Bad input gets a clear problem+json answer, never a crash or a stuck session."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from corral.common.signing import sign_request

from corral.manager.api.routes import ANY_METHODS

from .cluster import LiveCluster

pytestmark = [pytest.mark.docker]


async def _raw(cluster: LiveCluster, method: str, path: str, body: bytes = b"", headers: dict | None = None,
               sign: bool = True, now: datetime | None = None) -> tuple[int, dict, str]:
    signed = sign_request(cluster.admin_access_key, cluster.admin_secret_key, method, path, body, now=now) if sign else {}
    signed.update(headers or {})
    async with aiohttp.ClientSession() as http:
        async with http.request(method, cluster.manager.url + path, data=body, headers=signed) as resp:
            text = await resp.text()
            return resp.status, dict(resp.headers), text


@pytest.mark.parametrize(
    "body, needle",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"imagee": "x"}).encode(), "imagee"),
        (json.dumps({"resources": {"cpu": -1}}).encode(), "cpu"),
        (json.dumps({"resources": {"mem": "1000000t"}}).encode(), "mem"),
        (json.dumps({"resources": {"cpu": "abc"}}).encode(), "cpu"),
        (json.dumps({"resources": {"gpu": 1}}).encode(), "gpu"),
        (json.dumps({"type": "forever"}).encode(), "type"),
        (json.dumps({"type": "batch"}).encode(), "command"),
        (json.dumps({"name": "../etc"}).encode(), "name"),
        (json.dumps({"env": {"CORRAL_KERNEL_ID": "x"}}).encode(), "CORRAL_"),
    ],
)
async def test_malformed_creation_is_a_400_problem(cluster: LiveCluster, body: bytes, needle: str) -> None:
    status, headers, text = await _raw(cluster, "POST", "/api/v1/sessions", body, {"Content-Type": "application/json"})
    assert status == 400, text
    assert headers["Content-Type"].startswith("application/problem+json")
    problem = json.loads(text)
    assert problem["type"].endswith("/invalid-request") and problem["status"] == 400
    assert needle in problem["detail"]


async def test_request_no_agent_could_fit_is_refused_naming_the_resource(cluster: LiveCluster) -> None:
    body = json.dumps({"resources": {"cpu": 1, "mem": "900g"}}).encode()
    status, _, text = await _raw(cluster, "POST", "/api/v1/sessions", body)
    assert status == 422
    problem = json.loads(text)
    assert "mem" in problem["detail"] and problem["slots"] == ["mem"]
    body = json.dumps({"resources": {"cuda.device": 1}}).encode()
    status, _, text = await _raw(cluster, "POST", "/api/v1/sessions", body)
    assert status == 422 and "cuda.device" in json.loads(text)["detail"]


async def test_signature_problems_are_401(cluster: LiveCluster) -> None:
    path = "/api/v1/sessions"
    status, _, text = await _raw(cluster, "GET", path, sign=False)
    assert status == 401 and "Authorization" in json.loads(text)["detail"]

    forged = sign_request(cluster.admin_access_key, "not-the-secret", "GET", path)
    status, _, _ = await _raw(cluster, "GET", path, sign=False, headers=forged)
    assert status == 401

    old = datetime.now(timezone.utc) - timedelta(minutes=20)
    status, _, text = await _raw(cluster, "GET", path, now=old)
    assert status == 401 and "15 minutes" in json.loads(text)["detail"]

    replayed = sign_request(cluster.admin_access_key, cluster.admin_secret_key, "GET", path)
    first, _, _ = await _raw(cluster, "GET", path, sign=False, headers=replayed)
    second, _, text = await _raw(cluster, "GET", path, sign=False, headers=replayed)
    assert (first, second) == (200, 401) and "replay" in json.loads(text)["detail"]

    tampered = sign_request(cluster.admin_access_key, cluster.admin_secret_key, "POST", path, b"{}")
    status, _, _ = await _raw(cluster, "POST", path, b'{"name": "x"}', sign=False, headers=tampered)
    assert status == 401

    unknown = sign_request("AKNOBODY", "whatever", "GET", path)
    status, _, _ = await _raw(cluster, "GET", path, sign=False, headers=unknown)
    assert status == 401


async def test_unknown_routes_and_methods_are_problems(cluster: LiveCluster) -> None:
    status, headers, text = await _raw(cluster, "GET", "/api/v1/nothing-here")
    assert status == 404 and headers["Content-Type"].startswith("application/problem+json")
    status, _, text = await _raw(cluster, "PUT", "/api/v1/sessions")
    assert status == 405 and json.loads(text)["status"] == 405


async def test_agent_endpoints_need_the_cluster_secret(cluster: LiveCluster) -> None:
    status, _, _ = await _raw(cluster, "POST", "/internal/v1/agents/heartbeat", b"{}", sign=False,
                              headers={"Authorization": "Bearer wrong"})
    assert status == 401


async def test_openapi_document_matches_the_routes(cluster: LiveCluster) -> None:
    status, _, text = await _raw(cluster, "GET", "/api/v1/openapi.json", sign=False)
    assert status == 200
    document = json.loads(text)
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    app = cluster.manager.app
    served = {
        (method, r.resource.canonical.replace("{path:.*}", "{path}").replace("{tail:.*}", "{tail}"))
        for r in app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/v1") and r.method != "HEAD"
        and r.resource.canonical != "/api/v1/openapi.json"
        for method in (ANY_METHODS if r.method == "*" else (r.method,))  # a proxy: documented per method
    }
    assert documented == served
    create = document["paths"]["/api/v1/sessions"]["post"]
    schema_name = create["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "resources" in document["components"]["schemas"][schema_name]["properties"]
