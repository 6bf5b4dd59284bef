"""The runner's services: start, probe readiness, keep a log tail, serve a socket per service.

Loaded by the runner (stdlib only, Python 3.9-compatible); see ``kernels/services.py``
for what a definition says. A service moves ``stopped → starting → ready`` and to
``failed`` when its process exits or its readiness probe gives up; a failed service is
started again on next use, but not sooner than ``RESTART_BACKOFF_S`` after it failed,
so a crash loop costs little and the log tail stays readable.

Every service gets a listener at ``<runner dir>/svc-NAME.sock``: a connection there
starts the service if needed, waits until it is ready, and becomes a byte pipe to its
port on the container's loopback (closed at once if the service cannot get ready).
``svc-fd.sock`` does the same but hands the agent the connected TCP socket itself
(SCM_RIGHTS), so a tunnel's bytes never pass through the runner or the session's CPU quota.
"""
from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import socket
import subprocess
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional

FD_SOCKET_NAME = "svc-fd.sock"  # see ServiceManager._pass_connection
FD_REQUEST_TIMEOUT_S = 10.0
LOG_TAIL_BYTES = 16 * 1024
RESTART_BACKOFF_S = 5.0
STOP_GRACE_S = 3.0
PROBE_FIRST_S = 0.02
PROBE_MAX_S = 0.25
PROBE_TIMEOUT_S = 2.0

Splice = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[Optional[str]]]


class Service:
    def __init__(self, definition: Any) -> None:
        self.definition = definition
        self.state = "stopped"
        self.process: Optional[subprocess.Popen] = None
        self.exit_code: Optional[int] = None
        self.error: Optional[str] = None
        self.started_at: Optional[float] = None
        self.ready_at: Optional[float] = None
        self.failed_at: Optional[float] = None
        self.log = bytearray()
        self.settled: Optional["asyncio.Future[None]"] = None  # done when ready or failed

    def info(self) -> Dict[str, Any]:
        d = self.definition
        return {
            "name": d.name, "protocol": d.protocol, "port": d.port, "start": d.start, "state": self.state,
            "pid": self.process.pid if self.process is not None and self.state in ("starting", "ready") else None,
            "exit_code": self.exit_code, "error": self.error,
            "started_at": self.started_at, "ready_at": self.ready_at,
            "log_tail": self.log_tail(),
        }

    def log_tail(self) -> str:
        return bytes(self.log).decode("utf-8", "replace")

    def append_log(self, data: bytes) -> None:
        self.log += data
        if len(self.log) > LOG_TAIL_BYTES:
            del self.log[: len(self.log) - LOG_TAIL_BYTES]


class ServiceManager:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, reaper: Any, definitions: List[Any], runner_dir: str,
        socket_name: Callable[[str], str], prepare: Dict[str, Callable[[Any], None]], splice: Splice,
        bind: Callable[[str], Any],
    ) -> None:
        self.loop = loop
        self.reaper = reaper
        self.runner_dir = runner_dir
        self.services: Dict[str, Service] = {d.name: Service(d) for d in definitions}
        self._socket_name = socket_name
        self._prepare = prepare
        self._splice = splice
        self._bind = bind  # a listening socket at a path, open to the agent
        self._servers: List[asyncio.AbstractServer] = []
        self._probes: Dict[str, "asyncio.Task[None]"] = {}
        self._fd_task: Optional["asyncio.Task[None]"] = None
        self._fd_listener: Any = None

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        """Listens on each service's socket (and the descriptor-passing one) and starts the ``boot`` ones."""
        if self.services:
            self._fd_listener = self._bind(os.path.join(self.runner_dir, FD_SOCKET_NAME))
            self._fd_task = self.loop.create_task(self._serve_fd_requests(self._fd_listener))
        for name in self.services:
            listener = self._bind(os.path.join(self.runner_dir, self._socket_name(name)))
            server = await asyncio.start_unix_server(
                lambda r, w, name=name: self._serve_socket(name, r, w), sock=listener,
            )
            self._servers.append(server)
        for service in self.services.values():
            if service.definition.start == "boot":
                self._start(service)

    def close(self) -> None:
        if self._fd_task is not None:
            self._fd_task.cancel()
            self._fd_listener.close()
            _unlink_quietly(os.path.join(self.runner_dir, FD_SOCKET_NAME))
        for server in self._servers:
            server.close()
        for name in self.services:
            _unlink_quietly(os.path.join(self.runner_dir, self._socket_name(name)))
        for service in self.services.values():
            self._signal(service, signal.SIGTERM)

    # -- requests --------------------------------------------------------------------

    def infos(self) -> List[Dict[str, Any]]:
        return [service.info() for service in self.services.values()]

    def get(self, name: Any) -> Optional[Service]:
        return self.services.get(name) if isinstance(name, str) else None

    async def ensure(self, service: Service, wait_s: float) -> Dict[str, Any]:
        """Starts the service unless it is up (or failed too recently); waits up to ``wait_s`` for
        it to become ready or fail; returns its state."""
        if service.state == "stopped" or (
            service.state == "failed" and time.monotonic() - (service.failed_at or 0.0) >= RESTART_BACKOFF_S
        ):
            self._start(service)
        if service.state == "starting" and wait_s > 0 and service.settled is not None:
            try:
                await asyncio.wait_for(asyncio.shield(service.settled), wait_s)
            except asyncio.TimeoutError:
                pass
        return service.info()

    async def stop(self, service: Service) -> Dict[str, Any]:
        process = service.process
        if process is not None and service.state in ("starting", "ready"):
            service.state = "stopped"
            if service.settled is not None and not service.settled.done():
                service.settled.set_result(None)
            self._signal(service, signal.SIGTERM)
            self.loop.call_later(STOP_GRACE_S, self._signal, service, signal.SIGKILL, process)
        return service.info()

    # -- internals ------------------------------------------------------------------------

    def _start(self, service: Service) -> None:
        definition = service.definition
        service.state = "starting"
        service.exit_code = None
        service.error = None
        service.ready_at = None
        service.started_at = time.time()
        service.settled = self.loop.create_future()
        service.append_log(("--- starting %s: %s\n" % (definition.name, " ".join(definition.command))).encode())
        try:
            prepare = self._prepare.get(definition.name)
            if prepare is not None:
                prepare(definition)
            service.process = subprocess.Popen(
                definition.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=_service_env(definition.env), cwd=home_dir(), start_new_session=True,
            )
        except (OSError, ValueError) as error:
            self._fail(service, "cannot start %s: %s" % (definition.name, getattr(error, "strerror", None) or error))
            return
        process = service.process
        assert process.stdout is not None
        fd = process.stdout.fileno()
        os.set_blocking(fd, False)
        self.loop.add_reader(fd, self._read_output, service, process)
        exited = self.reaper.watch(process.pid)
        exited.add_done_callback(lambda future: self._on_exit(service, process, future))
        self._probes[definition.name] = self.loop.create_task(self._probe(service, process))

    def _read_output(self, service: Service, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        fd = process.stdout.fileno()
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            service.append_log(data)
            return
        self.loop.remove_reader(fd)
        process.stdout.close()

    def _on_exit(self, service: Service, process: subprocess.Popen, exited: "asyncio.Future[int]") -> None:
        if exited.cancelled():
            return
        process.returncode = exited.result()
        if process.stdout is not None and not process.stdout.closed:
            self._read_output(service, process)  # what it printed last
        if service.process is not process:
            return
        service.exit_code = exited.result()
        probe = self._probes.pop(service.definition.name, None)
        if probe is not None:
            probe.cancel()
        if service.state == "stopped":
            return
        self._fail(service, "%s exited with code %d" % (service.definition.name, exited.result()))

    def _fail(self, service: Service, error: str) -> None:
        service.state = "failed"
        service.error = error
        service.failed_at = time.monotonic()
        service.append_log(("--- %s\n" % error).encode())
        if service.settled is not None and not service.settled.done():
            service.settled.set_result(None)

    async def _probe(self, service: Service, process: subprocess.Popen) -> None:
        definition = service.definition
        deadline = time.monotonic() + definition.ready_timeout_s
        pause = PROBE_FIRST_S
        while service.process is process and service.state == "starting":
            if await _answers(definition.port, definition.ready_path):
                service.state = "ready"
                service.ready_at = time.time()
                if service.settled is not None and not service.settled.done():
                    service.settled.set_result(None)
                return
            if time.monotonic() >= deadline:
                self._fail(service, "%s was not ready after %g s" % (definition.name, definition.ready_timeout_s))
                self._signal(service, signal.SIGKILL, process)
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, PROBE_MAX_S)

    def _signal(self, service: Service, sig: int, process: Optional[subprocess.Popen] = None) -> None:
        process = process or service.process
        if process is None or process.returncode is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    async def _serve_socket(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        service = self.services[name]
        try:
            info = await self.ensure(service, service.definition.ready_timeout_s)
            if info["state"] == "ready":
                await self._splice(reader, writer, service.definition.port)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


    # -- descriptor passing: the agent gets the connected TCP socket itself ----------------------

    async def _serve_fd_requests(self, listener: Any) -> None:
        while True:
            try:
                connection, _ = await self.loop.sock_accept(listener)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            self.loop.create_task(self._pass_connection(connection))

    async def _pass_connection(self, connection: socket.socket) -> None:
        """One request line ``{"service": NAME}``; answers one JSON line, with the descriptor of a TCP
        connection to the ready service attached (SCM_RIGHTS), so the bytes skip the runner."""
        tcp: Optional[socket.socket] = None
        try:
            request = json.loads(await asyncio.wait_for(_read_line(self.loop, connection), FD_REQUEST_TIMEOUT_S))
            service = self.get(request.get("service") if isinstance(request, dict) else None)
            if service is None:
                known = ", ".join(sorted(self.services)) or "none"
                answer: Dict[str, Any] = {"ok": False, "error": "no service named %r (this session has: %s)"
                                          % (request.get("service") if isinstance(request, dict) else None, known)}
            else:
                info = await self.ensure(service, service.definition.ready_timeout_s)
                answer = {"ok": False, "service": info}
                if info["state"] == "ready":
                    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    tcp.setblocking(False)
                    try:
                        await asyncio.wait_for(
                            self.loop.sock_connect(tcp, ("127.0.0.1", service.definition.port)), FD_REQUEST_TIMEOUT_S)
                        answer = {"ok": True, "service": info}
                    except (OSError, asyncio.TimeoutError) as error:
                        answer = {"ok": False, "service": info, "error": "cannot connect to port %d: %s"
                                  % (service.definition.port, getattr(error, "strerror", None) or error)}
            line = (json.dumps(answer) + "\n").encode()
            connection.setblocking(True)
            if answer["ok"] and tcp is not None:
                socket.send_fds(connection, [line], [tcp.fileno()])
            else:
                connection.sendall(line)
        except (OSError, ValueError, asyncio.TimeoutError):
            pass
        finally:
            if tcp is not None:
                tcp.close()  # the agent holds its own copy now
            connection.close()


async def _read_line(loop: asyncio.AbstractEventLoop, connection: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await loop.sock_recv(connection, 4096)
        if not chunk:
            break
        data += chunk
        if len(data) > 65536:
            raise ValueError("request line too long")
    return data


async def _answers(port: int, http_path: Optional[str]) -> bool:
    """Whether something accepts connections on the port (and, for ``http_path``, answers a GET
    there with a status below 500)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), PROBE_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        if http_path is None:
            return True
        writer.write(("GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n" % (http_path, port)).encode("latin-1"))
        status_line = await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT_S)
        parts = status_line.split()
        return len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < 500
    except (OSError, asyncio.TimeoutError, ValueError):
        return False
    finally:
        writer.close()


# -- sshd: OpenSSH as the session user ----------------------------------------------------

# Where sshd also listens for the other kernels of a cluster session: comma-separated ADDRESS:PORT
# (the same name as corral.common.cluster.SSH_LISTEN_ENV; the runner cannot import that module).
CLUSTER_SSH_LISTEN_ENV = "CORRAL_CLUSTER_SSH_LISTEN"

_NOT_FORWARDED = frozenset({
    "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "SHLVL", "TERM", "_", "MAIL", "HOSTNAME",
    "CORRAL_SERVICES",
})


def cluster_listen_addresses(environ: Dict[str, str]) -> List[str]:
    """The ``ADDRESS:PORT`` entries of ``CLUSTER_SSH_LISTEN_ENV`` ([] outside a cluster session)."""
    return [entry.strip() for entry in environ.get(CLUSTER_SSH_LISTEN_ENV, "").split(",") if entry.strip()]


def sshd_config(port: int, ssh_dir: str, sshd_dir: str, subsystem: str, environ: Dict[str, str]) -> str:
    """An sshd_config for an unprivileged sshd on the container's loopback (and, in a cluster session,
    where the session's other kernels reach it): keys only (the manager's list for the session's owner,
    then the user's own ~/.ssh/authorized_keys), forwarding on (VSCode needs it), SFTP, and the session's
    environment in every login (GPU settings included)."""
    extra = cluster_listen_addresses(environ)
    loopback = "127.0.0.1:%d" % port
    # A wildcard on the service's own port already covers the loopback (binding both would fail).
    covered = loopback in extra or "0.0.0.0:%d" % port in extra
    listen = ([] if covered else [loopback]) + extra
    lines = [
        "# Written by the Corral runner each time sshd starts.",
        *["ListenAddress %s" % address for address in listen],
        "HostKey %s/ssh_host_ed25519_key" % ssh_dir,
        "PidFile %s/sshd.pid" % sshd_dir,
        "AuthorizedKeysFile %s/authorized_keys .ssh/authorized_keys" % ssh_dir,
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "HostbasedAuthentication no",
        "UsePAM no",
        "StrictModes no",  # the runner directory is world-writable by design (see contract.py)
        "PermitRootLogin no",
        "AllowTcpForwarding yes",
        "AllowStreamLocalForwarding yes",
        "AllowAgentForwarding yes",
        "X11Forwarding no",
        "PrintMotd no",
        "ClientAliveInterval 30",
        "AcceptEnv LANG LC_* COLORTERM",
        "Subsystem sftp %s" % subsystem,
    ]
    forwarded = [
        '"%s=%s"' % (name, value) for name, value in sorted(environ.items())
        if name not in _NOT_FORWARDED and not name.startswith("SSH_") and _plain(name) and _plain(value)
    ]
    if forwarded:
        lines.append("SetEnv " + " ".join(forwarded))
    return "\n".join(lines) + "\n"


def _plain(text: str) -> bool:
    """Can go into a quoted sshd_config word as it is."""
    return not any(ch in text for ch in '"\\\n\r')


def prepare_sshd(definition: Any, runner_dir: str, ssh_dir_name: str, sshd_dir_name: str) -> None:
    sshd_dir = os.path.join(runner_dir, sshd_dir_name)
    os.makedirs(sshd_dir, mode=0o700, exist_ok=True)
    subsystem = next(
        (path for path in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                           "/usr/libexec/sftp-server") if os.path.exists(path)),
        "internal-sftp",
    )
    text = sshd_config(definition.port, os.path.join(runner_dir, ssh_dir_name), sshd_dir, subsystem, dict(os.environ))
    path = os.path.join(sshd_dir, "sshd_config")
    with open(path + ".tmp", "w") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)


def _service_env(extra: Dict[str, str]) -> Dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HOME", home_dir())
    env.setdefault("USER", session_user())
    env.update(extra)
    return env


def session_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def home_dir() -> str:
    """The session user's home (``$HOME`` if it exists, else the passwd entry's, else ``/``)."""
    home = os.environ.get("HOME")
    if home and os.path.isdir(home):
        return home
    try:
        home = pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        home = "/"
    return home if os.path.isdir(home) else "/"


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
