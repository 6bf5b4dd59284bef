"""A small in-memory stand-in for the manager's REST API, for client tests.

It checks every request's HMAC signature the way the real manager does
(``parse_signed_headers`` + ``verify_signature`` over the raw path+query and
body), answers errors as problem+json, streams ``execute`` as NDJSON (running
the code in a real Python subprocess) and session events as SSE.

Every JSON body it sends must round-trip unchanged through the API model the
real manager builds that answer with (``corral.common.api_models``): no field
missing, none unknown, every value of the right type. A body that does not is
answered with a 500 and recorded in ``schema_violations``, which the
``fake_manager`` fixture checks.
"""
from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import TypeAdapter, ValidationError

from corral.common import api_models as api
from corral.common.api_models.sessions import Interrupted
from corral.common.errors import (
    PROBLEM_CONTENT_TYPE,
    AuthenticationFailed,
    Conflict,
    CorralError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    UnsatisfiableRequest,
)
from corral.common.signing import parse_signed_headers, verify_signature

ACCESS_KEY = "AKTESTCLIENT0001"
SECRET_KEY = "test-secret-key-0123456789"
USER_ACCESS_KEY = "AKTESTUSER000002"
USER_SECRET_KEY = "user-secret-key-9876543210"
BAD_IMAGE = "corral/does-not-exist:latest"
TERMINAL = {"TERMINATED", "ERROR", "CANCELLED"}
SESSION_FIELDS = {"name", "image", "type", "command", "env", "resources", "mounts", "resource_group", "project", "priority",
                  "cluster_size", "cluster_mode"}

# The model the real manager answers each route with (its route table says the same).
RESPONSE_MODELS: dict[tuple[str, str], Any] = {
    ("GET", "/api/v1/health"): api.Health,
    ("GET", "/api/v1/whoami"): api.WhoAmI,
    ("POST", "/api/v1/sessions"): api.Session,
    ("GET", "/api/v1/sessions"): api.SessionPage,
    ("GET", "/api/v1/sessions/{ref}"): api.Session,
    ("DELETE", "/api/v1/sessions/{ref}"): api.Session,
    ("GET", "/api/v1/sessions/{ref}/logs"): api.SessionLogs,
    ("POST", "/api/v1/sessions/{ref}/interrupt"): Interrupted,
    ("GET", "/api/v1/agents"): api.AgentList,
    ("GET", "/api/v1/images"): api.ImageList,
    ("POST", "/api/v1/users"): api.NewUser,
}

ACCESS_KEY_KEY = web.RequestKey("access_key", str)
ROLE_KEY = web.RequestKey("role", str)
ExecHandler = Callable[[str], Awaitable[list[dict[str, Any]]]]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def problem(error: CorralError, status: int | None = None) -> web.Response:
    return web.Response(
        status=status or error.status, text=json.dumps(error.to_problem()), content_type=PROBLEM_CONTENT_TYPE
    )


@dataclass
class RecordedRequest:
    method: str
    raw_path: str
    body: bytes
    access_key: str | None


@dataclass
class FakeManager:
    step_delay: float = 0.01
    events_enabled: bool = True
    exec_handler: ExecHandler | None = None
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    keys: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {ACCESS_KEY: (SECRET_KEY, "admin"), USER_ACCESS_KEY: (USER_SECRET_KEY, "user")}
    )
    # Progress lines (e.g. an image pull) sent as ``event: progress`` while PREPARING.
    progress_lines: list[str] = field(default_factory=list)
    # When set, sessions stay PENDING and say this, like the real scheduler ("waiting for resources: …").
    pending_reason: str | None = None
    schema_violations: list[str] = field(default_factory=list)
    # Logs ``?follow=1`` streams: these chunks, one every ``step_delay`` s, then the stream ends.
    follow_chunks: list[str] = field(default_factory=lambda: ["live line 1\n", "live line 2\n"])
    # The code each session is running now (its python subprocess), and those told to stop.
    running: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    interrupted: set[str] = field(default_factory=set)
    _changed: dict[str, asyncio.Event] = field(default_factory=dict)
    _sse_log: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)

    # -- app ------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth_middleware, self._schema_middleware])
        r = app.router
        r.add_get("/api/v1/health", self.health)
        r.add_get("/api/v1/whoami", self.whoami)
        r.add_post("/api/v1/sessions", self.create_session)
        r.add_get("/api/v1/sessions", self.list_sessions)
        r.add_get("/api/v1/sessions/{ref}", self.get_session)
        r.add_delete("/api/v1/sessions/{ref}", self.destroy_session)
        r.add_post("/api/v1/sessions/{ref}/execute", self.execute)
        r.add_get("/api/v1/sessions/{ref}/logs", self.logs)
        r.add_post("/api/v1/sessions/{ref}/interrupt", self.interrupt)
        r.add_get("/api/v1/sessions/{ref}/events", self.events)
        r.add_get("/api/v1/agents", self.agents)
        r.add_get("/api/v1/images", self.images)
        r.add_post("/api/v1/users", self.create_user)
        return app

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        access_key = None
        try:
            if request.path not in ("/api/v1/health", "/api/v1/openapi.json"):
                parts = parse_signed_headers(request.headers)
                if parts.access_key not in self.keys:
                    raise AuthenticationFailed(f"unknown access key {parts.access_key}")
                secret, role = self.keys[parts.access_key]
                verify_signature(parts, secret, request.method, request.raw_path, body)
                access_key = parts.access_key
                request[ACCESS_KEY_KEY] = access_key
                request[ROLE_KEY] = role
            self.requests.append(RecordedRequest(request.method, request.raw_path, body, access_key))
            return await handler(request)
        except CorralError as error:
            self.requests.append(RecordedRequest(request.method, request.raw_path, body, access_key))
            return problem(error)

    @web.middleware
    async def _schema_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        route = request.match_info.route.resource
        model = RESPONSE_MODELS.get((request.method, route.canonical if route is not None else ""))
        if model is None or not isinstance(response, web.Response) or response.status >= 400 or response.status == 204:
            return response
        body = json.loads(response.body)  # type: ignore[arg-type]
        problem = self._mismatch(model, body)
        if problem is None:
            return response
        self.schema_violations.append(f"{request.method} {request.path}: {problem}")
        return web.json_response({"detail": problem}, status=500)

    def _mismatch(self, model: Any, body: Any) -> str | None:
        adapter = TypeAdapter(model)
        try:
            again = adapter.dump_python(adapter.validate_python(body), mode="json")
        except ValidationError as exc:
            return str(exc)
        return None if again == body else f"not what {model.__name__} sends: {body!r} != {again!r}"

    def _checked(self, model: Any, doc: dict[str, Any]) -> dict[str, Any]:
        """A streamed document (an NDJSON line, an event's data), checked like the bodies are."""
        problem = self._mismatch(model, doc)
        if problem is not None:
            self.schema_violations.append(problem)
        return doc

    # -- helpers --------------------------------------------------------

    def _resolve(self, request: web.Request) -> dict[str, Any]:
        ref = request.match_info["ref"]
        owner = request[ACCESS_KEY_KEY]
        mine = [s for s in self.sessions.values() if s["owner"] == owner]
        for s in mine:
            if s["id"] == ref:
                return s
        by_prefix = [s for s in mine if len(ref) >= 4 and s["id"].startswith(ref)]
        if len(by_prefix) == 1:
            return by_prefix[0]
        by_name = [s for s in mine if s["name"] == ref and s["status"] not in TERMINAL] or [
            s for s in mine if s["name"] == ref
        ]
        if by_name:
            return by_name[-1]
        raise NotFound(f"no session {ref!r}")

    def _set_status(self, session: dict[str, Any], status: str, reason: str) -> None:
        session["status"] = status
        session["status_reason"] = reason
        change = {"session_id": session["id"], "status": status, "reason": reason, "at": _now()}
        session["status_history"].append(change)
        self._sse_log.setdefault(session["id"], []).append(("status", change))
        if status == "SCHEDULED":
            session["scheduled_at"] = change["at"]
        if status == "RUNNING":
            session["started_at"] = change["at"]
            session["kernels"][0]["status"] = "RUNNING"
            session["kernels"][0]["container_id"] = "c0ffee" * 10
        if status in TERMINAL:
            session["terminated_at"] = change["at"]
            session["kernels"][0]["status"] = status
        event = self._changed.setdefault(session["id"], asyncio.Event())
        event.set()
        self._changed[session["id"]] = asyncio.Event()

    def _add_progress(self, session: dict[str, Any], reason: str) -> None:
        """Like the real manager: the reason changes, the history does not."""
        session["status_reason"] = reason
        self._sse_log.setdefault(session["id"], []).append(
            ("progress", {"session_id": session["id"], "status": session["status"], "reason": reason, "at": _now()})
        )
        event = self._changed.setdefault(session["id"], asyncio.Event())
        event.set()
        self._changed[session["id"]] = asyncio.Event()

    async def _lifecycle(self, session: dict[str, Any]) -> None:
        if self.pending_reason is not None:
            await asyncio.sleep(self.step_delay)
            if session["status"] == "PENDING":
                session["status_reason"] = self.pending_reason  # in place, no history, no event: like set_reason
            return
        for status, reason in (("SCHEDULED", "placed on agent i-fake"), ("PREPARING", "creating container")):
            await asyncio.sleep(self.step_delay)
            if session["status"] in TERMINAL or session["status"] == "TERMINATING":
                return
            self._set_status(session, status, reason)
        for line in self.progress_lines:
            await asyncio.sleep(self.step_delay)
            self._add_progress(session, line)
        await asyncio.sleep(self.step_delay)
        if session["status"] in TERMINAL or session["status"] == "TERMINATING":
            return
        if session["image"] == BAD_IMAGE:
            self._set_status(session, "ERROR", f"image {BAD_IMAGE} not found on agent i-fake")
        else:
            self._set_status(session, "RUNNING", "container started")

    # -- handlers -------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": "0.0-fake", "manager_id": "manager-fake"})

    async def whoami(self, request: web.Request) -> web.Response:
        key = request[ACCESS_KEY_KEY]
        return web.json_response(
            {"user_id": f"u-{key[-4:]}", "username": "admin" if request[ROLE_KEY] == "admin" else "alice",
             "access_key": key, "role": request[ROLE_KEY]}
        )

    async def create_session(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            raise InvalidRequest("body is not JSON") from None
        if not isinstance(body, dict):
            raise InvalidRequest("body must be an object")
        unknown = set(body) - SESSION_FIELDS
        if unknown:
            raise InvalidRequest(f"unknown fields: {', '.join(sorted(unknown))}")
        if body.get("type") not in ("interactive", "batch"):
            raise InvalidRequest("type must be interactive or batch")
        resources = body.get("resources") or {}
        if int(resources.get("cuda.device", 0)) > 8:
            raise UnsatisfiableRequest(
                f"no agent can ever provide cuda.device={resources['cuda.device']} (largest: 8)",
                resource="cuda.device",
            )
        session_id = uuid.uuid4().hex
        name = body.get("name") or f"s-{session_id[:6]}"
        requested = {k: str(v) for k, v in resources.items()}
        command = body.get("command")
        created = {"session_id": session_id, "status": "PENDING", "reason": "created", "at": _now()}
        session: dict[str, Any] = {
            "id": session_id, "name": name, "owner": request[ACCESS_KEY_KEY], "type": body["type"],
            "status": "PENDING", "status_reason": "created", "image": body.get("image") or "corral/python:latest",
            "command": ["sh", "-c", command] if isinstance(command, str) else command,
            "env": body.get("env") or {}, "requested_slots": requested,
            "mounts": [_mount(spec) for spec in body.get("mounts") or []],
            "resource_group": body.get("resource_group") or "default", "project": body.get("project"),
            "priority": body.get("priority", 50),
            "cluster_size": body.get("cluster_size", 1), "cluster_mode": body.get("cluster_mode", "single-node"),
            "created_at": created["at"], "scheduled_at": None, "started_at": None, "terminated_at": None,
            "exit_code": None, "agent_id": "i-fake",
            "kernels": [{"id": uuid.uuid4().hex, "cluster_idx": 0, "name": "main1", "agent_id": "i-fake", "container_id": None,
                         "status": "PENDING", "status_reason": "", "requested_slots": requested,
                         "allocation": {"cpu": "1", "mem": 1 << 30, "cpu_cores": [0, 1], "numa_nodes": [0],
                                        "cpu_spilled": False, "gpu_shares": {}, "gpu_whole": False},
                         "exit_code": None}],
            "ssh": None,
            "status_history": [created],
        }
        self.sessions[session_id] = session
        self._sse_log[session_id] = [("status", created)]
        asyncio.get_running_loop().create_task(self._lifecycle(session))
        return web.json_response(session, status=201)

    async def list_sessions(self, request: web.Request) -> web.Response:
        owner = request[ACCESS_KEY_KEY]
        wanted = [s for s in request.query.get("status", "").split(",") if s]
        every_user = request.query.get("all_users") == "1"
        if every_user and request[ROLE_KEY] != "admin":
            raise PermissionDenied("only admins can list other users' sessions (all_users)")
        items = [s for s in self.sessions.values() if every_user or s["owner"] == owner]
        if wanted:
            items = [s for s in items if s["status"] in wanted]
        elif request.query.get("all") != "1":
            items = [s for s in items if s["status"] not in TERMINAL]
        limit = int(request.query.get("limit", "100"))
        start = int(request.query.get("cursor", "0"))
        page = items[start:start + limit]
        next_cursor = str(start + limit) if start + limit < len(items) else None
        listed = [{k: v for k, v in s.items() if k != "status_history"} for s in page]  # as the real one lists
        return web.json_response({"items": listed, "next_cursor": next_cursor})

    async def get_session(self, request: web.Request) -> web.Response:
        return web.json_response(self._resolve(request))

    async def destroy_session(self, request: web.Request) -> web.Response:
        session = self._resolve(request)
        if session["status"] in ("PENDING", "SCHEDULED"):
            self._set_status(session, "CANCELLED", "destroyed by user")
            return web.json_response(session)  # final at once, like the real one's 200
        if session["status"] in TERMINAL:
            return web.json_response(session)  # already ended: its final state, like the real one's 200
        self._set_status(session, "TERMINATING", "destroyed by user")
        self._set_status(session, "TERMINATED", "destroyed by user")
        return web.json_response(session, status=202)

    async def execute(self, request: web.Request) -> web.StreamResponse:
        session = self._resolve(request)
        if session["status"] != "RUNNING":
            raise Conflict(f"session {session['name']} is {session['status']}, not RUNNING")
        code = json.loads(await request.read())["code"]
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)

        async def send(event: dict[str, Any]) -> None:
            await response.write((json.dumps(self._checked(api.ExecuteEvent, event)) + "\n").encode())

        if self.exec_handler is not None:
            for event in await self.exec_handler(code):
                await send(event)
        else:
            await self._run_python(code, send, session["id"])
        await response.write_eof()
        return response

    async def _run_python(
        self, code: str, send: Callable[[dict[str, Any]], Awaitable[None]], session_id: str = ""
    ) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-u", "-c", code,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        self.running[session_id] = proc
        self.interrupted.discard(session_id)

        async def pump(stream: asyncio.StreamReader, name: str) -> None:
            while chunk := await stream.read(4096):
                await send({"op": "output", "stream": name, "data": chunk.decode(errors="replace")})

        try:
            await asyncio.gather(pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr"))  # type: ignore[arg-type]
            code_ = await proc.wait()
        finally:
            self.running.pop(session_id, None)
            if proc.returncode is None:  # client went away (Ctrl-C): do not leak the process
                proc.kill()
                await proc.wait()
        if session_id in self.interrupted:  # what the runner answers after an interrupt
            await send({"op": "result", "status": "interrupted", "exit_code": 1, "error": "KeyboardInterrupt"})
            return
        await send({"op": "result", "status": "ok" if code_ == 0 else "error", "exit_code": code_,
                    "error": None if code_ == 0 else f"exited with {code_}"})

    async def interrupt(self, request: web.Request) -> web.Response:
        session = self._resolve(request)
        if session["status"] != "RUNNING":
            raise Conflict(f"session {session['name']} is {session['status']}, not RUNNING")
        proc = self.running.get(session["id"])
        if proc is None or proc.returncode is not None:
            return web.json_response({"interrupted": False})
        self.interrupted.add(session["id"])
        proc.send_signal(signal.SIGINT)
        return web.json_response({"interrupted": True})

    async def logs(self, request: web.Request) -> web.StreamResponse:
        session = self._resolve(request)
        if request.query.get("follow") == "1":  # as the real one: text/plain, streamed until the session ends
            response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
            await response.prepare(request)
            for chunk in self.follow_chunks:
                await asyncio.sleep(self.step_delay)
                await response.write(chunk.encode())
            await response.write_eof()
            return response
        return web.json_response({"logs": f"log of {session['name']}\nline 2\n"})

    async def events(self, request: web.Request) -> web.StreamResponse:
        if not self.events_enabled:
            raise NotFound("no such route")
        session = self._resolve(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        await response.write(b": keep-alive comment\n\n")
        # One ordered log per session: status changes replayed from the start, progress
        # (e.g. an image pull) only from now on, like the real manager.
        log = self._sse_log.setdefault(session["id"], [])
        sent = 0
        progress_from = len(log)
        while True:
            waiter = self._changed.setdefault(session["id"], asyncio.Event())
            while sent < len(log):
                kind, doc = log[sent]
                sent += 1
                if kind == "progress" and sent <= progress_from:
                    continue
                data = json.dumps(self._checked(api.StatusChange, doc))
                await response.write(f"event: {kind}\ndata: {data}\n\n".encode())
                if kind == "status" and doc["status"] in TERMINAL:
                    await response.write_eof()
                    return response
            await waiter.wait()

    async def agents(self, request: web.Request) -> web.Response:
        if request[ROLE_KEY] != "admin":
            raise PermissionDenied("admin only")
        return web.json_response({"items": [{
            "id": "i-fake", "status": "ALIVE", "status_reason": "", "address": "http://127.0.0.1:6001",
            "resource_group": "default",
            "available_slots": {"cpu": "8", "mem": str(16 << 30), "cuda.shares": "2"},
            "occupied_slots": {"cpu": "2", "mem": str(1 << 30), "cuda.shares": "0.5"},
            "cpu_cores": list(range(8)), "gpus": [_gpu(0, "0.5"), _gpu(1, "1")],
            "gpu_links": [["X", "NV4"], ["NV4", "X"]], "images": ["corral/python:latest"],
            "first_contact": _now(), "last_heartbeat": _now(), "version": "0.0-fake",
        }]})

    async def create_user(self, request: web.Request) -> web.Response:
        if request[ROLE_KEY] != "admin":
            raise PermissionDenied("admin only")
        body = json.loads(await request.read())
        access, secret = f"AK{uuid.uuid4().hex[:14].upper()}", uuid.uuid4().hex
        self.keys[access] = (secret, body.get("role", "user"))
        return web.json_response({"id": uuid.uuid4().hex, "username": body["username"], "role": body.get("role", "user"),
                                  "created_at": _now(), "access_key": access, "secret_key": secret}, status=201)

    async def images(self, request: web.Request) -> web.Response:
        return web.json_response({"items": [{
            "name": "corral/python:latest", "image_id": "sha256:" + "ab" * 32, "size": 123456789,
            "labels": {"ai.corral.runner": "1"}, "agents": ["i-fake"],
            "python": None, "frameworks": [], "services": [],
        }]})


def _mount(spec: str) -> dict[str, Any]:
    """What the real manager stores for a ``NAME[:PATH][:ro]`` mount."""
    parts = spec.split(":")
    read_only = len(parts) > 1 and parts[-1] == "ro"
    if read_only:
        parts.pop()
    name = parts[0]
    path = parts[1] if len(parts) > 1 else f"/home/work/{name}"
    return {"name": name, "vfolder_id": f"vf-{name}", "host": "sp1:vol1", "vfid": uuid.uuid4().hex,
            "host_path": f"/srv/vfolders/{name}", "container_path": path, "read_only": read_only,
            "read_only_reason": "asked" if read_only else "", "permission": "rw"}


def _gpu(index: int, free_share: str) -> dict[str, Any]:
    return {"index": index, "uuid": f"GPU-{index}", "model": "NVIDIA Fake GPU", "memory": 16 << 30, "numa_node": 0,
            "cpu_affinity": "0-7", "pci_bus_id": f"00000000:0{index}:00.0", "free_share": free_share, "mig": []}


class ThreadedServer:
    """Serves an app from its own event loop thread, for sync tests (CliRunner)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: TestServer | None = None
        self.url = ""

    def start(self) -> str:
        self._thread.start()
        self._server = TestServer(self._app)
        asyncio.run_coroutine_threadsafe(self._server.start_server(), self._loop).result(10)
        self.url = str(self._server.make_url("")).rstrip("/")
        return self.url

    def stop(self) -> None:
        async def cancel_background_tasks() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_background_tasks(), self._loop).result(10)
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
