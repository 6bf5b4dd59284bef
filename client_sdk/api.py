"""The asynchronous SDK: one signed HTTP client for the manager's REST API.

    async with AsyncCorralClient() as client:          # config from file/env
        session = await client.create_session(resources={"cpu": "1", "mem": "1g"})
        await client.wait_for_status(session.id, {"RUNNING"}, timeout=120)
        async for event in client.execute(session.id, "print(1 + 1)"):
            ...
        await client.destroy_session(session.id)

Every request under ``/api/v1`` is signed (``corral.common.signing``) over the
exact path+query and body bytes that go on the wire. Failures surface as
``corral.common.errors.CorralError`` subclasses rebuilt from the server's
problem+json; an unreachable manager is ``ServiceUnavailable``.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
import functools
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable, Mapping, Sequence, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
from pydantic import ValidationError
from yarl import URL

from corral.common.errors import (
    PROBLEM_CONTENT_TYPE,
    AuthenticationFailed,
    Conflict,
    CorralError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ServiceUnavailable,
    UnsatisfiableRequest,
    error_from_problem,
)
from corral.common.signing import sign_request
from corral.common.ssh_keys import parse_public_key
from corral.common.terminal_protocol import HEARTBEAT_S as TERMINAL_HEARTBEAT_S
from corral.common.terminal_protocol import MAX_MESSAGE as TERMINAL_MAX_MESSAGE

from .config import ClientConfig, load_client_config
from .errors import ExecutionStreamBroken, SessionFailed, WaitTimeout
from corral.common.api_models import ExecuteOutput, ExecuteResult
from corral.common.api_models import User as UserModel

from .models import (
    TERMINAL_STATUSES,
    Agent,
    GroupQueue,
    QueueView,
    UsageReport,
    AppToken,
    SessionService,
    SessionServiceList,
    SshKey,
    SshKeyList,
    AgentList,
    ApiModel,
    Health,
    Image,
    ImageList,
    NewUser,
    Project,
    ProjectList,
    ResourceGroup,
    ResourceGroupList,
    ResourcePolicy,
    ResourcePolicyList,
    Session,
    SessionLogs,
    SessionPage,
    StatusChange,
    StorageHostList,
    UserList,
    Vfolder,
    VfolderList,
    VfolderToken,
    WhoAmI,
)
from .streams import iter_lines, iter_ndjson, iter_sse
from .terminal import TerminalConnection
from .ssh_setup import SshFiles, ensure_key_pair, host_block, proxy_command, require_ssh, write_known_host
from .tunnel import Tunnel

if TYPE_CHECKING:
    from .storage import StorageClient

API_PREFIX = "/api/v1"
UNSIGNED_PATHS = frozenset({f"{API_PREFIX}/health", f"{API_PREFIX}/openapi.json"})
DEFAULT_REQUEST_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
PENDING_REASON_POLL_S = 2.0  # how often a wait asks why a PENDING session is still queued

Model = TypeVar("Model", bound=ApiModel)

# For error responses that are not problem+json (a proxy's HTML page, say).
_ERROR_BY_STATUS: dict[int, type[CorralError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: QuotaExceeded,
    422: UnsatisfiableRequest,
    502: ServiceUnavailable,
    503: ServiceUnavailable,
    504: ServiceUnavailable,
}


@functools.cache
def _client_version() -> str:
    from importlib import metadata  # slow to import: only when a request is made

    try:
        return metadata.version("corral")
    except metadata.PackageNotFoundError:
        return "0"


@dataclass(frozen=True)
class ExecutionResult:
    """Everything one ``execute`` produced, for callers that do not stream."""

    status: str
    exit_code: int
    error: str | None
    stdout: str
    stderr: str


class AsyncCorralClient:
    """Async client of the manager; use as ``async with`` or call ``close()``."""

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self.config = config if config is not None else load_client_config()
        self._base = URL(self.config.endpoint)
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._http: aiohttp.ClientSession | None = None

    # -- lifecycle -------------------------------------------------------

    async def __aenter__(self) -> "AsyncCorralClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()
        self._http = None

    @property
    def endpoint(self) -> str:
        return self.config.endpoint

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                headers={"User-Agent": f"corral-client/{_client_version()}"},
            )
        return self._http

    # -- transport -------------------------------------------------------

    def _path_qs(self, path: str, query: Mapping[str, Any] | None) -> str:
        prefix = self._base.raw_path.rstrip("/")
        path_qs = prefix + path
        pairs = [(k, v) for k, v in (query or {}).items() if v is not None]
        if pairs:
            # Commas stay literal (status=RUNNING,PENDING); everything that
            # could be re-encoded on the way is percent-encoded up front.
            path_qs += "?" + urlencode(pairs, quote_via=quote, safe=",")
        return path_qs

    @asynccontextmanager
    async def _open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        streaming: bool = False,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send one request; yield the response if it succeeded, else raise its error."""
        path_qs = self._path_qs(path, query)
        data = b"" if body is None else json.dumps(body).encode()
        headers: dict[str, str] = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if path not in UNSIGNED_PATHS:
            if not self.config.has_credentials:
                raise AuthenticationFailed(
                    "no access key/secret key configured: set CORRAL_ACCESS_KEY and CORRAL_SECRET_KEY, "
                    "or run `corral login ENDPOINT` (ask your admin for keys) or `corral up`"
                )
            headers.update(
                sign_request(self.config.access_key, self.config.secret_key, method, path_qs, data)
            )
        timeout = aiohttp.ClientTimeout(
            total=None if streaming else self._request_timeout,
            sock_connect=self._connect_timeout,
        )
        url = URL(str(self._base.origin()) + path_qs, encoded=True)
        try:
            async with self._session().request(
                method, url, data=data or None, headers=headers, timeout=timeout
            ) as response:
                if response.status >= 400:
                    raise await self._error_from_response(response)
                yield response
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ConnectionRefusedError):
                reason = "connection refused (is `corral up` or the manager running?)"
            else:
                reason = exc.os_error.strerror if exc.os_error and exc.os_error.strerror else str(exc)
            raise ServiceUnavailable(f"cannot reach the Corral manager at {self.endpoint}: {reason}") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise ServiceUnavailable(
                f"lost the connection to the Corral manager at {self.endpoint}: {exc}"
            ) from None
        except asyncio.TimeoutError:
            # aiohttp's own timeouts; asyncio.timeout() around us cancels instead.
            raise ServiceUnavailable(f"the Corral manager at {self.endpoint} did not answer in time") from None

    async def _error_from_response(self, response: aiohttp.ClientResponse) -> CorralError:
        text = await response.text(errors="replace")
        content_type = response.headers.get("Content-Type", "")
        doc: Any = None
        if content_type.startswith((PROBLEM_CONTENT_TYPE, "application/json")):
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
        if isinstance(doc, dict) and ("type" in doc or "title" in doc or "detail" in doc):
            return error_from_problem(doc, response.status)
        cls = _ERROR_BY_STATUS.get(response.status, CorralError)
        snippet = " ".join(text.split())[:200]
        err = cls(f"HTTP {response.status} {response.reason or ''}".rstrip() + (f": {snippet}" if snippet else ""))
        err.http_status = response.status  # type: ignore[attr-defined]
        return err

    async def _json(
        self, method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        async with self._open(method, path, query=query, body=body) as response:
            text = await response.text()
        try:
            return json.loads(text) if text else None
        except ValueError:
            raise CorralError(f"the manager sent invalid JSON for {method} {path}") from None

    async def _model(
        self, model: type[Model], method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None
    ) -> Model:
        """The answer parsed by ``model``, the same model the manager built it with."""
        return _parse(model, await self._json(method, path, query=query, body=body), f"{method} {path}")

    @staticmethod
    def _ref(ref: str) -> str:
        if not ref:
            raise InvalidRequest("a session reference (id, id prefix or name) is required")
        return quote(ref, safe="")

    # -- API -------------------------------------------------------------

    async def health(self) -> Health:
        return await self._model(Health, "GET", f"{API_PREFIX}/health")

    async def whoami(self) -> WhoAmI:
        return await self._model(WhoAmI, "GET", f"{API_PREFIX}/whoami")

    async def create_session(
        self,
        *,
        image: str | None = None,
        type: str = "interactive",
        name: str | None = None,
        command: str | Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        resources: Mapping[str, str | int | float] | None = None,
        mounts: Sequence[str] | None = None,
        resource_group: str | None = None,
        project: str | None = None,
        priority: int | None = None,
        cluster_size: int = 1,
        cluster_mode: str = "single-node",
    ) -> Session:
        """Ask for a new session; it comes back PENDING (use ``wait_for_status``).

        ``cluster_size``: kernels in the session (``main1``, ``sub1`` …), each with ``resources``;
        ``cluster_mode``: ``single-node`` (all on one node) or ``multi-node`` (one per node). A batch
        command runs in every kernel and the session ends when main1 does.

        ``mounts``: vfolders as ``NAME[:PATH][:ro]`` (default path ``/home/work/NAME``).
        ``resource_group``: where it runs (default: your default group, else ``default``); ``project``:
        the project it counts against (default: your default project, if any); ``priority``: 0-100
        (default 50; above 50 for admins only).
        """
        body: dict[str, Any] = {"type": type, "resources": dict(resources or {})}
        if name:
            body["name"] = name
        if image:
            body["image"] = image
        if command is not None:
            body["command"] = command if isinstance(command, str) else list(command)
        if env:
            body["env"] = dict(env)
        if mounts:
            body["mounts"] = list(mounts)
        if resource_group:
            body["resource_group"] = resource_group
        if project:
            body["project"] = project
        if priority is not None:
            body["priority"] = priority
        if cluster_size != 1 or cluster_mode != "single-node":
            body["cluster_size"] = cluster_size
            body["cluster_mode"] = cluster_mode
        return await self._model(Session, "POST", f"{API_PREFIX}/sessions", body=body)

    async def list_sessions(
        self,
        *,
        status: Iterable[str] | None = None,
        all: bool = False,
        limit: int | None = None,
        cursor: str | None = None,
        all_users: bool = False,
    ) -> SessionPage:
        """One page of the caller's sessions (non-terminated unless ``all`` or ``status``);
        every user's with ``all_users`` (admins only: PermissionDenied otherwise)."""
        query: dict[str, Any] = {
            "status": ",".join(s.upper() for s in status) if status else None,
            "all": "1" if all else None,
            "all_users": "1" if all_users else None,
            "limit": limit,
            "cursor": cursor,
        }
        return await self._model(SessionPage, "GET", f"{API_PREFIX}/sessions", query=query)

    async def iter_session_pages(
        self, *, status: Iterable[str] | None = None, all: bool = False, page_size: int = 100,
        all_users: bool = False,
    ) -> AsyncIterator[SessionPage]:
        """Every page of ``list_sessions``, following ``next_cursor``."""
        statuses = list(status) if status else None
        cursor: str | None = None
        while True:
            page = await self.list_sessions(
                status=statuses, all=all, limit=page_size, cursor=cursor, all_users=all_users
            )
            yield page
            if not page.next_cursor or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    async def iter_sessions(
        self, *, status: Iterable[str] | None = None, all: bool = False, page_size: int = 100,
        all_users: bool = False,
    ) -> AsyncIterator[Session]:
        """Every matching session, following ``next_cursor`` across pages."""
        async for page in self.iter_session_pages(status=status, all=all, page_size=page_size, all_users=all_users):
            for session in page.items:
                yield session

    async def get_session(self, ref: str) -> Session:
        return await self._model(Session, "GET", f"{API_PREFIX}/sessions/{self._ref(ref)}")

    async def destroy_session(self, ref: str) -> Session:
        """Cancel or terminate the session; one that has already ended comes back as it is (no error)."""
        return await self._model(Session, "DELETE", f"{API_PREFIX}/sessions/{self._ref(ref)}")

    async def logs(self, ref: str, *, kernel: str | None = None) -> str:
        """The session's container output; a cluster session's is every kernel's, each line labelled
        ``[main1] `` … (``kernel``: only that one's, unlabelled)."""
        query = {"kernel": kernel} if kernel else None
        return (await self._model(SessionLogs, "GET", f"{API_PREFIX}/sessions/{self._ref(ref)}/logs",
                                  query=query)).logs

    async def follow_logs(self, ref: str, *, kernel: str | None = None) -> AsyncIterator[str]:
        """The session's container output so far, then new output as it comes, until the session
        ends (``GET …/logs?follow=1``, a text/plain stream); chunks are not split into lines."""
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        path = f"{API_PREFIX}/sessions/{self._ref(ref)}/logs"
        query = {"follow": "1", **({"kernel": kernel} if kernel else {})}
        async with self._open("GET", path, query=query, streaming=True) as response:
            try:
                async for chunk in response.content.iter_any():
                    if text := decoder.decode(chunk):
                        yield text
            except aiohttp.ClientPayloadError as exc:
                raise ServiceUnavailable(f"the log stream broke: {exc}") from None
        if tail := decoder.decode(b"", final=True):
            yield tail

    async def interrupt(self, ref: str, *, kernel: str | None = None) -> bool:
        """Interrupt the code running in the session (SIGINT, as Ctrl-C would; the runner kills it
        if it ignores that): its ``execute`` then ends with status ``interrupted``. Returns False
        when nothing was running. The session and its interpreter's state stay."""
        from corral.common.api_models.sessions import Interrupted

        answer = await self._model(Interrupted, "POST", f"{API_PREFIX}/sessions/{self._ref(ref)}/interrupt",
                                   query={"kernel": kernel} if kernel else None)
        return answer.interrupted

    async def _ws_connect(
        self, path: str, query: dict[str, Any] | None, what: str, *, max_msg_size: int = 0
    ) -> aiohttp.ClientWebSocketResponse:
        """A signed websocket handshake; a refusal is raised as the error the manager gives for the same
        request without the upgrade (a refused handshake carries no body)."""
        path_qs = self._path_qs(path, query or {})
        if not self.config.has_credentials:
            raise AuthenticationFailed("no access key/secret key configured")
        headers = sign_request(self.config.access_key, self.config.secret_key, "GET", path_qs, b"")
        url = URL(str(self._base.origin()) + path_qs, encoded=True)
        try:
            return await self._session().ws_connect(
                url, headers=headers, heartbeat=TERMINAL_HEARTBEAT_S, max_msg_size=max_msg_size,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (400, 401, 403, 404, 409, 502, 503):
                await self._json("GET", path, query=query)
            cls = _ERROR_BY_STATUS.get(exc.status, CorralError)
            raise cls(f"the manager refused {what}: HTTP {exc.status} {exc.message}".rstrip()) from None
        except aiohttp.ClientConnectorError as exc:
            raise ServiceUnavailable(f"cannot reach the Corral manager at {self.endpoint}: {exc}") from None

    @asynccontextmanager
    async def terminal(
        self, ref: str, *, rows: int = 24, cols: int = 80, attach: str | None = None
    ) -> AsyncIterator[TerminalConnection]:
        """A shell in the session (its main kernel): ``async with client.terminal("nb") as term:``.

        ``term.send(b"ls\n")``, ``term.resize(rows, cols)``, ``async for chunk in term.output()``;
        ``term.pty_id`` with ``attach=`` finds the same shell again after a dropped connection.
        """
        path = f"{API_PREFIX}/sessions/{self._ref(ref)}/terminal"
        query = {"rows": rows, "cols": cols, "attach": attach}
        socket = await self._ws_connect(path, query, "the terminal", max_msg_size=TERMINAL_MAX_MESSAGE)
        connection = await TerminalConnection.attach(socket)
        try:
            yield connection
        finally:
            await connection.close()

    # -- services: tunnels, apps ---------------------------------------------------------

    async def services(self, ref: str) -> list[SessionService]:
        """The session's services (its image's and the built-in terminal) with their states."""
        path = f"{API_PREFIX}/sessions/{self._ref(ref)}/services"
        return (await self._model(SessionServiceList, "GET", path)).services

    async def start_service(self, ref: str, name: str, *, wait_s: float = 0) -> SessionService:
        """Starts a service unless it is up; with ``wait_s``, returns once it is ready (SessionServiceFailed
        with its log tail if it fails)."""
        path = f"{API_PREFIX}/sessions/{self._ref(ref)}/services/{quote(name, safe='')}/start"
        return await self._model(SessionService, "POST", path, query={"wait_s": wait_s})

    async def open_tunnel(self, ref: str, name: str) -> Tunnel:
        """A TCP connection to the service (``await tunnel.send(b)``, ``await tunnel.receive()``)."""
        path = f"{API_PREFIX}/sessions/{self._ref(ref)}/services/{quote(name, safe='')}/tcp"
        return Tunnel(await self._ws_connect(path, None, f"a tunnel to {name}"))

    async def app_url(self, ref: str, name: str) -> str:
        """A one-time link that logs a browser in to the session's http service (valid for two minutes)."""
        path = f"{API_PREFIX}/sessions/{self._ref(ref)}/services/{quote(name, safe='')}/app-token"
        token = await self._model(AppToken, "POST", path)
        return str(self._base.origin()) + token.url

    # -- SSH keys -------------------------------------------------------------------------

    async def ssh_keys(self) -> list[SshKey]:
        return (await self._model(SshKeyList, "GET", f"{API_PREFIX}/ssh-keys")).items

    async def add_ssh_key(self, public_key: str, name: str = "") -> SshKey:
        body = {"public_key": public_key, "name": name}
        return await self._model(SshKey, "POST", f"{API_PREFIX}/ssh-keys", body=body)

    async def remove_ssh_key(self, ref: str) -> SshKey:
        """By id or fingerprint (``SHA256:…``)."""
        if ref.startswith("SHA256:"):  # base64 may hold '/', which proxies mangle in a path: use the id
            ref = next((key.id for key in await self.ssh_keys() if key.fingerprint == ref), ref)
        return await self._model(SshKey, "DELETE", f"{API_PREFIX}/ssh-keys/{quote(ref, safe='')}")

    async def ensure_ssh_key(self, files: SshFiles | None = None) -> str:
        """This user's key pair for sessions (made on first use under ``files``, default
        ``~/.config/corral/ssh/``) registered with the manager; returns the public key line."""
        files = files or SshFiles.default()
        public = ensure_key_pair(files, f"corral@{socket.gethostname()}")
        fingerprint = parse_public_key(public).fingerprint
        if not any(key.fingerprint == fingerprint for key in await self.ssh_keys()):
            with contextlib.suppress(Conflict):  # registered meanwhile by another corral
                await self.add_ssh_key(public, f"corral CLI on {socket.gethostname()}")
        return public

    async def ssh_config(
        self, refs: Sequence[str] | None = None, *, files: SshFiles | None = None, proxy: str | None = None,
    ) -> str:
        """``Host corral-NAME`` entries for the sessions (all RUNNING ones with an sshd when ``refs`` is
        None); pins their host keys in corral's known_hosts and makes/registers the key pair first.
        ``proxy``: the ProxyCommand (default: this ``corral ssh-proxy %n``)."""
        files = files or SshFiles.default()
        sessions = await self.ssh_sessions(refs, files)
        return "\n".join(host_block(session, files, proxy or proxy_command()) for session in sessions)

    async def ssh_sessions(self, refs: Sequence[str] | None, files: SshFiles) -> list[Session]:
        """The sessions (all RUNNING ones with an sshd when ``refs`` is None), ready for OpenSSH: the
        key pair made and registered, their host keys pinned in ``files.known_hosts``."""
        key, found = await asyncio.gather(
            self.ensure_ssh_key(files),
            self._ssh_candidates(refs),
        )
        for session in found:
            require_ssh(session)
            write_known_host(files, session)
        return found

    async def _ssh_candidates(self, refs: Sequence[str] | None) -> list[Session]:
        if refs is None:
            return [s for s in await self.list_sessions(status=["RUNNING"]) if s.ssh is not None]
        return list(await asyncio.gather(*(self.get_session(ref) for ref in refs)))

    async def execute(self, ref: str, code: str, *, kernel: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Run ``code`` in the session's interpreter (main1's, or ``kernel``'s), yielding its events as
        they come.

        Events: ``{"op": "output", "stream": "stdout"|"stderr", "data": str}``
        then exactly one ``{"op": "result", "status", "exit_code", "error"}``.
        """
        path = f"{API_PREFIX}/sessions/{self._ref(ref)}/execute"
        query = {"kernel": kernel} if kernel else None
        async with self._open("POST", path, query=query, body={"code": code}, streaming=True) as response:
            try:
                async for event in iter_ndjson(response.content.iter_any()):
                    yield event
                    if event.get("op") == "result":
                        return
            except (aiohttp.ClientPayloadError, ValueError) as exc:
                raise ExecutionStreamBroken(f"the execution stream broke: {exc}") from None
        raise ExecutionStreamBroken("the execution stream ended without a result")

    async def execute_collect(self, ref: str, code: str, *, kernel: str | None = None) -> ExecutionResult:
        """``execute`` without streaming: gather the output, return it with the result."""
        out: list[str] = []
        err: list[str] = []
        result = ExecuteResult()
        async for event in self.execute(ref, code, kernel=kernel):
            if event.get("op") == "output":
                output = _parse(ExecuteOutput, event, "an execute output line")
                (err if output.stream == "stderr" else out).append(output.data)
            elif event.get("op") == "result":
                result = _parse(ExecuteResult, event, "the execute result line")
        return ExecutionResult(
            status=result.status,
            exit_code=result.exit_code,
            error=result.error,
            stdout="".join(out),
            stderr="".join(err),
        )

    async def watch_session(self, ref: str, *, progress: bool = False) -> AsyncIterator[StatusChange]:
        """Status changes from the event stream: full history first, then live, until terminal.

        With ``progress=True`` also the ephemeral progress news of a starting session (an
        image pull, say), as ``StatusChange`` objects whose ``kind`` is ``"progress"``.
        """
        path = f"{API_PREFIX}/sessions/{self._ref(ref)}/events"
        wanted = {"status", "progress"} if progress else {"status"}
        async with self._open("GET", path, streaming=True) as response:
            lines = iter_lines(response.content.iter_any())
            async for event in iter_sse(lines):
                if event.event not in wanted:
                    continue
                try:
                    doc = event.json()
                except ValueError:
                    continue
                if isinstance(doc, dict):
                    change = StatusChange.from_json(doc, kind=event.event)
                    yield change
                    if change.is_terminal:
                        return

    async def wait_for_status(
        self,
        ref: str,
        statuses: Iterable[str],
        timeout: float | None = None,
        *,
        poll_interval: float = 0.5,
        on_progress: Callable[[StatusChange], None] | None = None,
    ) -> Session:
        """Wait until the session is in one of ``statuses``; return it then.

        Raises ``SessionFailed`` if it ends (ERROR, CANCELLED, TERMINATED) in a
        status not asked for, ``WaitTimeout`` after ``timeout`` seconds (its message,
        ``status`` and ``reason`` say where the session was and why, e.g. "waiting for
        resources: …", also in its ``extra``: session_id, session_status, reason; the session
        itself is left as it is). Uses the event stream and
        falls back to polling when the stream is unavailable. ``on_progress``, if given,
        sees every status change and progress line (e.g. an image pull) while waiting,
        and why a PENDING session is still queued, to show people what is happening.
        """
        targets = frozenset(s.upper() for s in statuses)
        last_seen: list[str] = []
        known: dict[str, str] = {}  # what we last heard: session_id, status, reason
        try:
            async with asyncio.timeout(timeout):
                return await self._wait(ref, targets, poll_interval, last_seen, on_progress, known)
        except TimeoutError:
            pass
        with contextlib.suppress(CorralError, aiohttp.ClientError, TimeoutError):
            async with asyncio.timeout(5):  # the latest word, e.g. why it is still PENDING
                latest = await self.get_session(known.get("session_id", ref))
                known.update(status=latest.status, reason=latest.status_reason or "")
        status = known.get("status") or (last_seen[-1] if last_seen else "")
        reason = known.get("reason", "")
        seen = f" (last status: {status}" + (f": {reason}" if reason else "") + ")" if status else ""
        raise WaitTimeout(
            f"session {ref} did not reach {'/'.join(sorted(targets))} within {timeout:g}s{seen}",
            session_id=known.get("session_id", ""), session_status=status, reason=reason,
        ) from None

    async def _wait(
        self,
        ref: str,
        targets: frozenset[str],
        poll_interval: float,
        last_seen: list[str],
        on_progress: Callable[[StatusChange], None] | None = None,
        known: dict[str, str] | None = None,
    ) -> Session:
        known = {} if known is None else known
        session = await self.get_session(ref)
        known.update(session_id=session.id, status=session.status, reason=session.status_reason or "")
        if (done := self._settled(session, targets, last_seen)) is not None:
            return done

        def heard(change: StatusChange) -> None:
            known.update(status=change.status, reason=change.reason or "")
            if on_progress is not None:
                on_progress(change)

        # The event stream has no news of a queued session's reason (the scheduler updates
        # it in place, e.g. "waiting for resources: …"): ask for it now and then meanwhile.
        reasons = asyncio.create_task(
            self._poll_pending_reason(session.id, known, heard) if on_progress is not None else asyncio.sleep(0)
        )
        try:
            # Watch by id: a name may be reused by a later session.
            try:
                async with aclosing(self.watch_session(session.id, progress=on_progress is not None)) as changes:
                    async for change in changes:
                        heard(change)
                        if change.is_progress:
                            continue
                        last_seen.append(change.status)
                        if change.status in targets or change.is_terminal:
                            break
            except (AuthenticationFailed, PermissionDenied):
                raise
            except (CorralError, aiohttp.ClientError, ValueError):
                # No usable event stream (an older server, a proxy that buffers,
                # a dropped connection): polling finds the answer, and raises
                # NotFound itself if the session is really gone.
                pass
        finally:
            reasons.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reasons
        while True:
            session = await self.get_session(session.id)
            if (done := self._settled(session, targets, last_seen)) is not None:
                return done
            if (news := _progress_in(session)) is not None and news.reason != known.get("reason"):
                heard(news)
            await asyncio.sleep(poll_interval)

    async def _poll_pending_reason(
        self, session_id: str, known: dict[str, str], heard: Callable[[StatusChange], None]
    ) -> None:
        while True:
            await asyncio.sleep(PENDING_REASON_POLL_S)
            try:
                session = await self.get_session(session_id)
            except (CorralError, aiohttp.ClientError, ValueError):
                continue  # the event stream or the final look will tell
            if session.status == "PENDING" == known.get("status") and session.status_reason:
                if session.status_reason != known.get("reason"):
                    heard(StatusChange(session.status, session.status_reason, None, session.id, kind="progress"))

    @staticmethod
    def _settled(session: Session, targets: frozenset[str], last_seen: list[str]) -> Session | None:
        last_seen.append(session.status)
        if session.status in targets:
            return session
        if session.status in TERMINAL_STATUSES:
            raise SessionFailed(session)
        return None

    async def list_agents(self) -> list[Agent]:
        return (await self._model(AgentList, "GET", f"{API_PREFIX}/agents")).items

    async def list_images(self) -> list[Image]:
        return (await self._model(ImageList, "GET", f"{API_PREFIX}/images")).items

    # -- vfolders ----------------------------------------------------------

    async def create_vfolder(
        self, name: str, *, quota: int | str | None = None, host: str | None = None, project: str | None = None
    ) -> Vfolder:
        """A new vfolder; ``quota`` in bytes or as a size (``"10g"``), ``host`` as ``PROXY:VOLUME``."""
        body: dict[str, Any] = {"name": name}
        for key, value in (("quota", quota), ("host", host), ("project", project)):
            if value is not None:
                body[key] = value
        return await self._model(Vfolder, "POST", f"{API_PREFIX}/vfolders", body=body)

    async def list_vfolders(self, *, trashed: bool = False) -> list[Vfolder]:
        """Your vfolders and those shared with you (or, with ``trashed``, yours in the trash)."""
        query = {"trashed": "1" if trashed else None}
        return (await self._model(VfolderList, "GET", f"{API_PREFIX}/vfolders", query=query)).items

    async def get_vfolder(self, ref: str, *, usage: bool = True) -> Vfolder:
        query = None if usage else {"usage": "0"}
        return await self._model(Vfolder, "GET", f"{API_PREFIX}/vfolders/{self._vref(ref)}", query=query)

    async def update_vfolder(
        self, ref: str, *, name: str | None = None, quota: int | str | None = None, unlimited: bool = False
    ) -> Vfolder:
        """Rename and/or change the quota (``unlimited=True`` removes it)."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if quota is not None:
            body["quota"] = quota
        if unlimited:
            body["unlimited"] = True
        return await self._model(Vfolder, "PATCH", f"{API_PREFIX}/vfolders/{self._vref(ref)}", body=body)

    async def rename_vfolder(self, ref: str, new_name: str) -> Vfolder:
        return await self.update_vfolder(ref, name=new_name)

    async def delete_vfolder(self, ref: str) -> Vfolder:
        """Move to the trash (``restore_vfolder`` brings it back, ``purge_vfolder`` deletes its files)."""
        return await self._model(Vfolder, "DELETE", f"{API_PREFIX}/vfolders/{self._vref(ref)}")

    async def restore_vfolder(self, ref: str) -> Vfolder:
        return await self._model(Vfolder, "POST", f"{API_PREFIX}/vfolders/{self._vref(ref)}/restore")

    async def purge_vfolder(self, ref: str) -> Vfolder:
        return await self._model(Vfolder, "POST", f"{API_PREFIX}/vfolders/{self._vref(ref)}/purge")

    async def share_vfolder(self, ref: str, username: str, permission: str = "ro") -> Vfolder:
        body = {"username": username, "permission": permission}
        return await self._model(Vfolder, "POST", f"{API_PREFIX}/vfolders/{self._vref(ref)}/shares", body=body)

    async def unshare_vfolder(self, ref: str, username: str) -> None:
        await self._json("DELETE", f"{API_PREFIX}/vfolders/{self._vref(ref)}/shares/{quote(username, safe='')}")

    async def vfolder_token(self, ref: str, permission: str = "ro") -> VfolderToken:
        path = f"{API_PREFIX}/vfolders/{self._vref(ref)}/token"
        return await self._model(VfolderToken, "POST", path, body={"permission": permission})

    async def storage(self, ref: str, permission: str = "rw", **options: Any) -> "StorageClient":
        """A ready ``StorageClient`` for the vfolder's files (close it, or use ``async with``).

        The token is short-lived (minutes): get a new client for long jobs.
        ``options`` go to ``StorageClient`` (``chunk_size``, ``state_store`` …).
        """
        from .storage import StorageClient

        grant = await self.vfolder_token(ref, permission)
        return StorageClient(grant.client_url, grant.token, vfid=grant.vfid, **options)

    async def upload(self, ref: str, local_path: str, remote_path: str = "", **options: Any) -> Any:
        """Upload a file or a directory tree into the vfolder (resumes an interrupted upload).

        ``options`` go to ``StorageClient.upload_file`` / ``upload_tree``.
        """
        from pathlib import Path

        source = Path(local_path)
        async with await self.storage(ref, "rw") as storage:
            if source.is_dir():
                return await storage.upload_tree(source, remote_path, **options)
            return await storage.upload_file(source, remote_path or source.name, **options)

    async def download(self, ref: str, remote_path: str, local_path: str, **options: Any) -> Any:
        """Download a file, or a directory (unpacked into ``local_path``)."""
        async with await self.storage(ref, "ro") as storage:
            info = await storage.stat(remote_path) if remote_path not in ("", ".", "/") else {"type": "dir"}
            if info.get("type") == "dir":
                return await storage.download_dir(remote_path, local_path, **options)
            return await storage.download_file(remote_path, local_path, **options)

    async def list_storage_hosts(self) -> list[dict[str, Any]]:
        hosts = await self._model(StorageHostList, "GET", f"{API_PREFIX}/storage/hosts")
        return list(hosts.raw.get("items", []))

    @staticmethod
    def _vref(ref: str) -> str:
        if not ref:
            raise InvalidRequest("a vfolder name or id is required")
        return quote(ref, safe="")

    # -- users (admin) ---------------------------------------------------------

    async def create_user(self, username: str, role: str = "user", password: str | None = None) -> dict[str, Any]:
        """A new user and keypair; the only time the secret key is shown. With ``password`` they can
        also sign in to the web UI (8-1024 characters, not the username)."""
        body: dict[str, Any] = {"username": username, "role": role}
        if password is not None:
            body["password"] = password
        return (await self._model(NewUser, "POST", f"{API_PREFIX}/users", body=body)).raw

    async def list_users(self) -> list[dict[str, Any]]:
        users = await self._model(UserList, "GET", f"{API_PREFIX}/users")
        return list(users.raw.get("items", []))

    async def set_password(self, username: str, password: str, current_password: str | None = None) -> None:
        """Set a user's web UI password: admins anyone's; users their own, giving ``current_password``
        (unless they have none yet). That user's web sessions end."""
        body: dict[str, Any] = {"password": password}
        if current_password is not None:
            body["current_password"] = current_password
        await self._json("PUT", f"{API_PREFIX}/users/{quote(username, safe='')}/password", body=body)

    async def disable_user(self, username: str) -> dict[str, Any]:
        """Disable a user (admin): their keypairs and web sessions stop working at once."""
        return await self._set_user_active(username, False)

    async def enable_user(self, username: str) -> dict[str, Any]:
        """Enable a disabled user again (admin): their keypairs work again."""
        return await self._set_user_active(username, True)

    async def _set_user_active(self, username: str, active: bool) -> dict[str, Any]:
        path = f"{API_PREFIX}/users/{quote(username, safe='')}"
        return (await self._model(UserModel, "PATCH", path, body={"is_active": active})).raw

    async def update_user(self, username: str, **changes: Any) -> dict[str, Any]:
        """Change a user (admin): ``resource_policy``, ``default_group``, ``default_project`` (a project
        they are a member of), ``fair_share`` (> 0), ``is_active``. Only what is given changes; None
        clears a policy, default group or default project."""
        path = f"{API_PREFIX}/users/{quote(username, safe='')}"
        return (await self._model(UserModel, "PATCH", path, body=dict(changes))).raw

    # -- resource groups and policies ------------------------------------------------

    async def usage(self, *, first_day: str | None = None, last_day: str | None = None, by: str = "user",
                    group: str | None = None, user: str | None = None, project: str | None = None) -> UsageReport:
        """Resource-hours per UTC day and per user (or project): yours and your projects', everyone's for
        admins. Days as YYYY-MM-DD (default: the last 7 days)."""
        query = {k: v for k, v in {"from": first_day, "to": last_day, "by": by, "group": group, "user": user,
                                   "project": project}.items() if v is not None}
        return await self._model(UsageReport, "GET", f"{API_PREFIX}/usage", query=query)

    async def usage_csv(self, *, first_day: str | None = None, last_day: str | None = None, by: str = "user",
                        group: str | None = None, user: str | None = None, project: str | None = None) -> str:
        """The same report as CSV text (a header row, one row per day and holder and group)."""
        query = {k: v for k, v in {"from": first_day, "to": last_day, "by": by, "group": group, "user": user,
                                   "project": project}.items() if v is not None}
        async with self._open("GET", f"{API_PREFIX}/usage", query={**query, "format": "csv"}) as response:
            return await response.text()

    async def queue(self, group: str | None = None) -> list[GroupQueue]:
        """Pending sessions per resource group in the order the scheduler will consider them (every group
        you may use, or only ``group``), with the policy's factors, reasons and the head's reservation."""
        query = {"group": self._name(group, "group")} if group is not None else None
        return (await self._model(QueueView, "GET", f"{API_PREFIX}/queue", query=query)).groups

    async def list_resource_groups(self) -> list[ResourceGroup]:
        """The groups you may use (every group, with who may use it and agent counts, for admins)."""
        return (await self._model(ResourceGroupList, "GET", f"{API_PREFIX}/resource-groups")).items

    async def get_resource_group(self, name: str) -> ResourceGroup:
        return await self._model(ResourceGroup, "GET", f"{API_PREFIX}/resource-groups/{self._name(name, 'group')}")

    async def create_resource_group(self, name: str, **settings: Any) -> ResourceGroup:
        """A new group (admin). ``settings``: ``description``, ``queue_policy`` (fifo, lifo, drf,
        fair-share), ``backfill``, ``preemption``, ``scorers`` ([{"name", "weight"}] or "NAME[:WEIGHT]"
        strings), ``allowed_session_types``, ``allowed_users`` (usernames), ``allowed_projects``
        (project names); the allowed lists left out (or None): everyone."""
        body = {"name": name, **settings}
        return await self._model(ResourceGroup, "POST", f"{API_PREFIX}/resource-groups", body=body)

    async def update_resource_group(self, name: str, **changes: Any) -> ResourceGroup:
        """Change a group (admin): the settings of ``create_resource_group``, only those given."""
        path = f"{API_PREFIX}/resource-groups/{self._name(name, 'group')}"
        return await self._model(ResourceGroup, "PATCH", path, body=dict(changes))

    async def delete_resource_group(self, name: str) -> ResourceGroup:
        """Delete a group (admin); Conflict while agents, sessions or users' defaults use it."""
        path = f"{API_PREFIX}/resource-groups/{self._name(name, 'group')}"
        return await self._model(ResourceGroup, "DELETE", path)

    async def list_resource_policies(self) -> list[ResourcePolicy]:
        return (await self._model(ResourcePolicyList, "GET", f"{API_PREFIX}/resource-policies")).items

    async def get_resource_policy(self, name: str) -> ResourcePolicy:
        path = f"{API_PREFIX}/resource-policies/{self._name(name, 'policy')}"
        return await self._model(ResourcePolicy, "GET", path)

    async def create_resource_policy(self, name: str, **limits: Any) -> ResourcePolicy:
        """A new policy (admin). ``limits``: ``max_concurrent_sessions``, ``max_pending_sessions``,
        ``max_slots`` ({"cpu", "mem" (bytes or "64g"), "cuda.device", "cuda.shares"}),
        ``max_cluster_size``, ``max_session_lifetime_s``, ``idle_timeout_s``; left out: no limit."""
        body = {"name": name, **limits}
        return await self._model(ResourcePolicy, "POST", f"{API_PREFIX}/resource-policies", body=body)

    async def update_resource_policy(self, name: str, **changes: Any) -> ResourcePolicy:
        """Change a policy (admin): only the limits given; None removes one, ``max_slots`` is merged slot by
        slot (a slot given as None loses its limit)."""
        path = f"{API_PREFIX}/resource-policies/{self._name(name, 'policy')}"
        return await self._model(ResourcePolicy, "PATCH", path, body=dict(changes))

    async def delete_resource_policy(self, name: str) -> ResourcePolicy:
        """Delete a policy (admin); Conflict while a user or project is held to it."""
        path = f"{API_PREFIX}/resource-policies/{self._name(name, 'policy')}"
        return await self._model(ResourcePolicy, "DELETE", path)

    @staticmethod
    def _name(name: str, what: str) -> str:
        if not name:
            raise InvalidRequest(f"a resource {what} name is required")
        return quote(name, safe="")

    # -- projects ----------------------------------------------------------------

    async def create_project(self, name: str, description: str = "") -> Project:
        """A new project (admin only); add members with ``add_project_member``."""
        body = {"name": name, "description": description}
        return await self._model(Project, "POST", f"{API_PREFIX}/projects", body=body)

    async def list_projects(self) -> list[Project]:
        """The caller's projects (every project for admins)."""
        return (await self._model(ProjectList, "GET", f"{API_PREFIX}/projects")).items

    async def get_project(self, name: str) -> Project:
        """A project with its members and vfolders (members and admins only)."""
        return await self._model(Project, "GET", f"{API_PREFIX}/projects/{self._pref(name)}")

    async def add_project_member(self, name: str, username: str, role: str = "member") -> Project:
        """Add ``username`` as ``member`` or ``manager`` (admins and the project's managers)."""
        body = {"username": username, "role": role}
        return await self._model(Project, "POST", f"{API_PREFIX}/projects/{self._pref(name)}/members", body=body)

    async def set_project_member_role(self, name: str, username: str, role: str) -> Project:
        path = f"{API_PREFIX}/projects/{self._pref(name)}/members/{quote(username, safe='')}"
        return await self._model(Project, "PATCH", path, body={"role": role})

    async def update_project(self, name: str, **changes: Any) -> Project:
        """Change a project (admin): ``description``, ``resource_policy`` (None clears it), ``fair_share``."""
        return await self._model(Project, "PATCH", f"{API_PREFIX}/projects/{self._pref(name)}", body=dict(changes))

    async def remove_project_member(self, name: str, username: str) -> Project | None:
        """Remove a member (or, as that member, leave); None when the caller can no longer see the project."""
        path = f"{API_PREFIX}/projects/{self._pref(name)}/members/{quote(username, safe='')}"
        doc = await self._json("DELETE", path)
        return _parse(Project, doc, f"DELETE {path}") if doc else None

    @staticmethod
    def _pref(name: str) -> str:
        if not name:
            raise InvalidRequest("a project name is required")
        return quote(name, safe="")


def _parse(model: type[Model], doc: Any, what: str) -> Model:
    if not isinstance(doc, Mapping):
        raise CorralError(f"the manager answered {what} with {type(doc).__name__}, not a JSON object")
    try:
        return model.from_json(doc)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "the document"
        raise CorralError(
            f"the manager's answer to {what} is not a {model.__name__}: {where}: {problem['msg']}"
        ) from None


def _progress_in(session: Session) -> StatusChange | None:
    """A reason newer than the session's last status change is progress news (e.g. a pull)."""
    last = session.status_history[-1] if session.status_history else None
    if not session.status_reason or (last is not None and last.reason == session.status_reason):
        return None
    return StatusChange(session.status, session.status_reason, None, session.id, kind="progress")
