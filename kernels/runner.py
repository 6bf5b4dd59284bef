"""Corral in-container runner: serves code execution over a Unix socket.

Stdlib only, runnable as a plain script with any Python >= 3.9, because it is
bind-mounted read-only into arbitrary images at /opt/corral and started as
``python3 /opt/corral/runner.py`` (interactive) or
``python3 /opt/corral/runner.py --batch -- ARGV...`` (batch).

Protocol (newline-delimited JSON on ``$CORRAL_RUNNER_SOCKET``, default
``/run/corral/runner.sock``; a connection carries any number of requests; a
request may carry an ``"id"`` that is echoed in every reply to it):

    {"op": "ping"}                -> {"op": "pong", "pid": N, "python": "3.11.2", "mode": ..., "busy": bool}
    {"op": "execute", "code": S}  -> {"op": "output", "stream": "stdout"|"stderr", "data": S}*
                                     {"op": "result", "status": "ok"|"error"|"interrupted",
                                      "exit_code": N, "error": S|null}
    {"op": "interrupt"}           -> {"op": "interrupt_ok", "interrupted": bool}
    {"op": "shutdown"}            -> {"op": "shutdown_ok"}, then the runner exits
    {"op": "services"}            -> {"op": "services", "services": [INFO...]}
    {"op": "service_start", "name": S, "wait_s": F}
                                  -> {"op": "service", "service": INFO} (once ready/failed, or after wait_s)
    {"op": "service_stop", "name": S}
                                  -> {"op": "service", "service": INFO}
      INFO: {"name", "protocol", "port", "start", "state": "stopped"|"starting"|"ready"|"failed",
             "pid", "exit_code", "error", "started_at", "ready_at", "log_tail"}
    anything else                 -> {"op": "error", "error": S}

As the first line of a connection only (they take it over; see kernels/README.md):

    {"op": "connect", "port": N}  -> {"ok": true} then a raw byte pipe to 127.0.0.1:N
    {"op": "pty", "rows": R, "cols": C, "attach": ID|null, "command": [...]|null}
                                  -> {"ok": true, "pty": ID} then frames (contract.PTY_FRAME_*)
    failure                       -> {"ok": false, "error": S}, then the runner closes

Executes run in one persistent worker interpreter (a child ``python3 -u``
whose fd 1/2 are pipes read by this process, so output of subprocesses is
streamed too) and are serialized: a second execute waits for the first.
"""
from __future__ import annotations

import asyncio
import codecs
import json
import os
import signal
import subprocess
import sys
from typing import Any, Callable, Dict, List, Optional


def _load_sibling(name: str) -> Any:
    """``NAME.py`` next to this file, whether imported from the corral package or run as
    ``/opt/corral/runner.py``. Loaded by path under a ``corral_runner_`` name, so it works
    whatever ``sys.path`` is (``PYTHONSAFEPATH``) and never shadows a user's module (user code
    runs in a separate worker interpreter anyway)."""
    if __package__:
        import importlib

        return importlib.import_module("%s.%s" % (__package__, name))
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    spec = importlib.util.spec_from_file_location("corral_runner_" + name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


contract = _load_sibling("contract")
service_defs = _load_sibling("services")
runner_services = _load_sibling("runner_services")
DEFAULT_SOCKET_PATH = contract.CONTAINER_RUNNER_SOCKET
SOCKET_ENV = contract.RUNNER_SOCKET_ENV
INTERRUPT_GRACE_ENV = "CORRAL_INTERRUPT_GRACE"  # seconds before an unresponsive worker is killed
DEFAULT_INTERRUPT_GRACE = 5.0
MAX_REQUEST_BYTES = 64 * 1024 * 1024
READ_CHUNK = 65536
WRITE_HIGH_WATER = 4 * 1024 * 1024  # pause reading a worker pipe while a client lags this much
LOG_COPY_MAX_BYTES = 4 * 1024 * 1024  # at most this much output waits to be copied to the container log
STREAM_HIGH_WATER = 256 * 1024  # "connect": stop reading one side while the other lags this much
PTY_OUTPUT_HIGH_WATER = 256 * 1024  # "pty": stop reading the terminal while its client lags this much
PTY_FINAL_OUTPUT_BYTES = 1024 * 1024  # at most this much output is still read after the shell exits
CONNECT_TIMEOUT_S = 10.0
STREAM_OPS = ("connect", "pty")  # take over their connection: only as its first request


# --------------------------------------------------------------------------
# Worker: the persistent interpreter (runs in a child process)
# --------------------------------------------------------------------------


def worker_main(command_fd: int, result_fd: int) -> None:
    """Reads code from ``command_fd`` and writes one JSON result line per execute."""
    import types

    for fd in (command_fd, result_fd):
        os.set_inheritable(fd, False)  # user subprocesses must not hold the control pipes
    sys.path[0] = ""  # like an interactive interpreter: import from the working directory
    sys.argv = [""]
    main_module = types.ModuleType("__main__")
    main_module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main_module  # so pickle/multiprocessing find user-defined names
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # idle: a late interrupt must not kill us
    commands = os.fdopen(command_fd, "rb", buffering=0)
    results = os.fdopen(result_fd, "wb", buffering=0)
    pending = b""
    while True:
        while b"\n" not in pending:
            chunk = commands.read(READ_CHUNK)
            if not chunk:
                return
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        code = json.loads(line.decode("utf-8"))["code"]
        result = _run_cell(code, main_module.__dict__)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        results.write(json.dumps(result).encode("utf-8") + b"\n")


def _run_cell(code: str, namespace: Dict[str, Any]) -> Dict[str, Any]:
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            _exec_cell(code, namespace)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:
        return {"status": "interrupted", "exit_code": 1, "error": "KeyboardInterrupt"}
    except SystemExit as exit_request:
        return _system_exit_result(exit_request)
    except BaseException as error:  # noqa: BLE001 - any user error is reported, never fatal
        return {"status": "error", "exit_code": 1, "error": _format_user_traceback(error)}
    return {"status": "ok", "exit_code": 0, "error": None}


def _exec_cell(code: str, namespace: Dict[str, Any]) -> None:
    """Runs a cell; a trailing expression is echoed like the interactive prompt does.

    The echo rule: when the cell's last statement is an expression, its value is
    printed with ``sys.displayhook`` (its ``repr``, and ``_`` is set), as the
    Python prompt does, except when

    * the value is ``None`` (``print(x)``, ``f()`` for a function without a result), or
    * the expression is a list or set comprehension whose items are all ``None``:
      one written for its side effects, like ``[print(i) for i in x]``, does not
      echo ``[None, None, ...]``. (An empty one still echoes ``[]``; a literal
      ``[None, None]`` is echoed.)

    A value is only ever echoed for the last statement, never for earlier ones.
    """
    import ast  # worker-only imports stay out of the runner's start-up path

    tree = ast.parse(code, "<cell>", "exec")
    last_expression = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last_expression = tree.body.pop().value
    exec(compile(tree, "<cell>", "exec"), namespace)
    if last_expression is not None:
        value = eval(compile(ast.Expression(body=last_expression), "<cell>", "eval"), namespace)
        if not _is_silent_value(last_expression, value):
            sys.displayhook(value)


def _is_silent_value(expression: Any, value: Any) -> bool:
    """Whether a cell's trailing expression is not echoed (see ``_exec_cell``)."""
    import ast

    if value is None:
        return True
    if isinstance(expression, (ast.ListComp, ast.SetComp)) and isinstance(value, (list, set)) and value:
        return all(item is None for item in value)
    return False


def _system_exit_result(exit_request: SystemExit) -> Dict[str, Any]:
    code = exit_request.code
    if code is None or code == 0:
        return {"status": "ok", "exit_code": 0, "error": None}
    if isinstance(code, int):
        return {"status": "error", "exit_code": code, "error": "SystemExit: %d" % code}
    print(code, file=sys.stderr)  # what the interpreter does with sys.exit("message")
    return {"status": "error", "exit_code": 1, "error": "SystemExit: %s" % (code,)}


def _format_user_traceback(error: BaseException) -> str:
    import traceback

    if isinstance(error, SyntaxError):
        return "".join(traceback.format_exception_only(type(error), error))
    frames = error.__traceback__
    # Drop this module's own frames so the traceback starts at the user's cell.
    while frames is not None and frames.tb_frame.f_code.co_filename == __file__:
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(error), error, frames))


# --------------------------------------------------------------------------
# Runner side: child bookkeeping
# --------------------------------------------------------------------------


class ChildReaper:
    """Reaps every child on SIGCHLD (the runner is PID 1 in its container).

    Orphaned grandchildren are re-parented to PID 1, so waiting only for our
    own children would leave zombies; instead we wait for anything and hand
    the statuses of children we started to whoever watches them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._watchers: Dict[int, "asyncio.Future[int]"] = {}
        self._unclaimed: Dict[int, int] = {}
        loop.add_signal_handler(signal.SIGCHLD, self.reap)

    def watch(self, pid: int) -> "asyncio.Future[int]":
        """A future resolving to the child's shell-style exit code (128+N if killed)."""
        future: asyncio.Future[int] = self._loop.create_future()
        if pid in self._unclaimed:
            future.set_result(self._unclaimed.pop(pid))
        else:
            self._watchers[pid] = future
        self.reap()
        return future

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            exit_code = _exit_code_from_wait_status(status)
            future = self._watchers.pop(pid, None)
            if future is None:
                self._unclaimed[pid] = exit_code
            elif not future.done():
                future.set_result(exit_code)


def _exit_code_from_wait_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 1


def _record_returncode(process: subprocess.Popen) -> Callable[["asyncio.Future[int]"], None]:
    """Tells ``process`` its status so that Popen never waits on a reaped (maybe reused) pid."""

    def record(exited: "asyncio.Future[int]") -> None:
        if not exited.cancelled():
            process.returncode = exited.result()

    return record


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------
# Runner side: one execution's output destination
# --------------------------------------------------------------------------


class ContainerLogCopy:
    """Copies executed code's output to the runner's own fd 1/2, i.e. the container's log
    (``docker logs``, ``corral session logs``), without ever holding up execution.

    A daemon thread does the (blocking) writes; at most ``max_bytes`` wait for it and
    whatever comes while that much is waiting is dropped from the copy (never from the
    execute's own stream), with one line on stderr saying how much. On exit it gets a
    moment (``FLUSH_AT_EXIT_S``) to write what is still waiting.
    """

    FLUSH_AT_EXIT_S = 1.0

    def __init__(self, max_bytes: int = LOG_COPY_MAX_BYTES) -> None:
        import threading

        self._max_bytes = max_bytes
        self._changed = threading.Condition()
        self._pending: List[Any] = []  # (fd, bytes)
        self._pending_bytes = 0
        self._dropped = 0
        self._writing = False
        self._thread: Optional[Any] = None

    def write(self, stream: str, data: bytes) -> None:
        if not data:
            return
        with self._changed:
            if self._pending_bytes + len(data) > self._max_bytes:
                self._dropped += len(data)
            else:
                self._pending.append((2 if stream == "stderr" else 1, data))
                self._pending_bytes += len(data)
            self._changed.notify()
        if self._thread is None:
            import atexit
            import threading

            self._thread = threading.Thread(target=self._run, name="corral-log-copy", daemon=True)
            self._thread.start()
            atexit.register(self.flush, self.FLUSH_AT_EXIT_S)

    def flush(self, timeout: float) -> None:
        """Waits up to ``timeout`` s for what is waiting to be written."""
        with self._changed:
            self._changed.wait_for(lambda: not self._pending and not self._writing, timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._pending or self._dropped))
                chunks, self._pending, self._pending_bytes = self._pending, [], 0
                dropped, self._dropped = self._dropped, 0
                self._writing = True
            if dropped:
                note = "[corral-runner: %d bytes of output were not copied to the container log]\n" % dropped
                chunks.append((2, note.encode()))
            for fd, data in chunks:
                _write_all(fd, data)
            with self._changed:
                self._writing = False
                self._changed.notify_all()


def _cgroup_oom_kills() -> int:
    """How many processes the kernel's OOM killer has killed in this container's cgroup (0 if unknown)."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as events:
                for line in events:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


def _memory_limit_note() -> str:
    """`` (limit 512 MiB)`` from this container's cgroup, or nothing if it has none we can read."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as limit_file:
                limit = int(limit_file.read().strip())
        except (OSError, ValueError):
            continue
        if limit < 1 << 60:  # cgroup v1 says "no limit" with a huge number
            return " (limit %s)" % _mib_text(limit)
    return ""


def _mib_text(size: int) -> str:
    return "%d MiB" % (size >> 20) if size >= 1 << 20 else "%d bytes" % size


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            import select

            select.select([], [fd], [], 1.0)
        except OSError:
            return  # nobody to copy to (closed): the copy is best effort


class OutputSink:
    """Where a running execute's output goes: one client connection."""

    def __init__(self, connection: "Connection", request_id: Any) -> None:
        self.connection = connection
        self.request_id = request_id

    def write(self, stream: str, data: str) -> None:
        self.connection.send({"op": "output", "stream": stream, "data": data}, self.request_id)

    def is_congested(self) -> bool:
        return self.connection.buffered_bytes() > WRITE_HIGH_WATER

    async def wait_uncongested(self) -> None:
        await self.connection.drain()


class Worker:
    """The persistent interpreter child, its pipes and the execute in flight."""

    def __init__(self, loop: asyncio.AbstractEventLoop, reaper: ChildReaper) -> None:
        self._loop = loop
        self._reaper = reaper
        self.process: Optional[subprocess.Popen] = None
        self.exited: Optional["asyncio.Future[int]"] = None
        self._command_fd = -1
        self._result_fd = -1
        self._output_fds: Dict[str, int] = {}
        self._decoders: Dict[str, Any] = {}
        self._result_buffer = b""
        self._current: Optional["asyncio.Future[Dict[str, Any]]"] = None
        self.sink: Optional[OutputSink] = None
        self.log_copy = ContainerLogCopy()  # every output also goes to the container's log
        self._oom_kills_at_start = 0  # the cgroup's OOM kill count when the execute in flight began
        self.interrupt_requested = False
        self.closed = False  # set while the runner shuts down: no restarts any more
        self._result_pipe_closed = False  # the worker died (or is dying)

    @property
    def alive(self) -> bool:
        return (
            self.process is not None and self.exited is not None
            and not self.exited.done() and not self._result_pipe_closed
        )

    @property
    def busy(self) -> bool:
        return self._current is not None and not self._current.done()

    def start(self) -> None:
        command_read, command_write = os.pipe()
        result_read, result_write = os.pipe()
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop(SOCKET_ENV, None)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-u", os.path.abspath(__file__), "--worker",
                 str(command_read), str(result_write)],
                stdin=subprocess.DEVNULL,
                stdout=stdout_write,
                stderr=stderr_write,
                pass_fds=(command_read, result_write),
                start_new_session=True,  # own process group: interrupts reach its children too
                env=env,
            )
        finally:
            for fd in (command_read, result_write, stdout_write, stderr_write):
                os.close(fd)
        self.exited = self._reaper.watch(self.process.pid)
        self.exited.add_done_callback(_record_returncode(self.process))
        self._command_fd = command_write
        os.set_blocking(command_write, False)
        self._result_fd = result_read
        self._result_pipe_closed = False
        self._result_buffer = b""
        self._output_fds = {"stdout": stdout_read, "stderr": stderr_read}
        self._decoders = {}
        for stream, fd in self._output_fds.items():
            os.set_blocking(fd, False)
            self._decoders[stream] = codecs.getincrementaldecoder("utf-8")(errors="replace")
            self._loop.add_reader(fd, self._on_output_readable, stream)
        os.set_blocking(result_read, False)
        self._loop.add_reader(result_read, self._on_result_readable)

    async def execute(self, code: str, sink: OutputSink) -> Dict[str, Any]:
        """Runs ``code``; the caller serializes calls."""
        if self.closed:
            return {"status": "error", "exit_code": 1, "error": "the runner is shutting down"}
        if not self.alive:
            if self.process is not None:
                self.kill()  # a worker that closed its result pipe but lingers
            self._close_pipes()
            self.start()
        self._current = self._loop.create_future()
        self.sink = sink
        self.interrupt_requested = False
        self._oom_kills_at_start = _cgroup_oom_kills()
        try:
            await self._send_command(json.dumps({"code": code}).encode("utf-8") + b"\n")
            return await self._current
        finally:
            self._flush_decoders()
            self.sink = None
            self._current = None

    async def _send_command(self, payload: bytes) -> None:
        view = memoryview(payload)
        while view:
            try:
                written = os.write(self._command_fd, view)
            except BlockingIOError:
                await asyncio.sleep(0.005)
                continue
            except BrokenPipeError:
                return  # the result pipe's EOF reports the worker's death
            view = view[written:]

    def interrupt(self, grace: float) -> bool:
        """SIGINT to the worker's group; kill it if it ignores that for ``grace`` s."""
        if not self.busy or self.process is None:
            return False
        self.interrupt_requested = True
        _kill_group(self.process.pid, signal.SIGINT)
        current = self._current
        self._loop.call_later(grace, self._kill_if_still_running, current)
        return True

    def _kill_if_still_running(self, execution: Optional["asyncio.Future[Dict[str, Any]]"]) -> None:
        if execution is not None and execution is self._current and not execution.done():
            self.kill()

    def kill(self) -> None:
        if self.process is not None:
            _kill_group(self.process.pid, signal.SIGKILL)

    def terminate(self) -> None:
        if self.process is not None:
            _kill_group(self.process.pid, signal.SIGTERM)

    # -- pipe callbacks -----------------------------------------------------

    def _on_output_readable(self, stream: str) -> None:
        fd = self._output_fds.get(stream, -1)
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._loop.remove_reader(fd)
            return
        self._emit(stream, data)
        sink = self.sink
        if sink is not None and sink.is_congested():
            self._loop.remove_reader(fd)
            self._loop.create_task(self._resume_after_drain(stream, fd, sink))

    async def _resume_after_drain(self, stream: str, fd: int, sink: OutputSink) -> None:
        try:
            await sink.wait_uncongested()
        finally:
            if self._output_fds.get(stream) == fd:
                self._loop.add_reader(fd, self._on_output_readable, stream)

    def _emit(self, stream: str, data: bytes) -> None:
        # All of it goes to the container's log, also output with no execute in flight
        # (a background thread, say); an execute in flight streams it to its client too.
        self.log_copy.write(stream, data)
        text = self._decoders[stream].decode(data)
        if text and self.sink is not None:
            self.sink.write(stream, text)

    def _drain_outputs(self) -> None:
        """Reads what is already in the output pipes; called before a result is sent."""
        for stream, fd in self._output_fds.items():
            while True:
                try:
                    data = os.read(fd, READ_CHUNK)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                self._emit(stream, data)

    def _flush_decoders(self) -> None:
        for stream, decoder in self._decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail and self.sink is not None:
                self.sink.write(stream, tail)
            decoder.reset()

    def _on_result_readable(self) -> None:
        try:
            data = os.read(self._result_fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._loop.remove_reader(self._result_fd)
            self._result_pipe_closed = True
            self._drain_outputs()
            assert self.exited is not None
            self._loop.create_task(self._report_worker_exit(self._current, self.exited))
            return
        self._result_buffer += data
        while b"\n" in self._result_buffer:
            line, self._result_buffer = self._result_buffer.split(b"\n", 1)
            result = json.loads(line.decode("utf-8"))
            self._drain_outputs()
            if self._current is not None and not self._current.done():
                self._current.set_result(result)

    async def _report_worker_exit(
        self, execution: Optional["asyncio.Future[Dict[str, Any]]"], exited: "asyncio.Future[int]"
    ) -> None:
        """Ends the execute the worker died in (if any) with the worker's exit status."""
        try:
            exit_code = await asyncio.wait_for(asyncio.shield(exited), 5.0)
        except asyncio.TimeoutError:
            exit_code = -1
        if execution is not None and not execution.done():
            status = "interrupted" if self.interrupt_requested else "error"
            how = "exited with code %d" % exit_code
            if exit_code == 128 + signal.SIGKILL and _cgroup_oom_kills() > self._oom_kills_at_start:
                how = "was killed: out of memory%s" % _memory_limit_note()
            execution.set_result({
                "status": status,
                "exit_code": exit_code if exit_code > 0 else 1,
                "error": "the interpreter %s; it will be restarted "
                         "and previously defined variables are lost" % how,
            })

    def _close_pipes(self) -> None:
        fds = list(self._output_fds.values()) + [self._result_fd, self._command_fd]
        for fd in fds:
            if fd < 0:
                continue
            try:
                self._loop.remove_reader(fd)
            except (ValueError, OSError):
                pass
            try:
                os.close(fd)
            except OSError:
                pass
        self._output_fds = {}
        self._result_fd = self._command_fd = -1


# --------------------------------------------------------------------------
# Runner side: streams ("connect": a TCP pipe; "pty": a terminal)
# --------------------------------------------------------------------------


def _pause_reading(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        transport.pause_reading()  # type: ignore[attr-defined]


def _resume_reading(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        transport.resume_reading()  # type: ignore[attr-defined]


def _write_buffered(writer: asyncio.StreamWriter) -> int:
    return 0 if writer.is_closing() else writer.transport.get_write_buffer_size()


async def _pump(
    source: asyncio.StreamReader, source_writer: asyncio.StreamWriter, target: asyncio.StreamWriter
) -> None:
    """Copies ``source`` to ``target`` until EOF, then half-closes ``target``.

    While ``target`` lags more than ``STREAM_HIGH_WATER`` bytes, the source's transport
    stops reading, so the peer is back-pressured through the kernel's socket buffers."""
    while True:
        data = await source.read(READ_CHUNK)
        if not data:
            break
        target.write(data)
        if _write_buffered(target) > STREAM_HIGH_WATER:
            _pause_reading(source_writer)
            try:
                await target.drain()
            finally:
                _resume_reading(source_writer)
    if not target.is_closing() and target.can_write_eof():
        target.write_eof()


async def splice_to_port(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int,
    connected: Optional[Callable[[Optional[str]], None]] = None,
) -> None:
    """Connects to 127.0.0.1:PORT and copies bytes both ways until both sides reach EOF (or
    either resets). ``connected`` hears None once connected, or why connecting failed."""
    address = "127.0.0.1:%d" % port
    try:
        tcp_reader, tcp_writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, limit=STREAM_HIGH_WATER), CONNECT_TIMEOUT_S)
    except ConnectionRefusedError:
        error: Optional[str] = "connection refused: %s" % address
    except asyncio.TimeoutError:
        error = "connection timed out: %s" % address
    except OSError as failure:
        error = "cannot connect to %s: %s" % (address, failure.strerror or failure)
    else:
        error = None
    if connected is not None:
        connected(error)
    if error is not None:
        return
    loop = asyncio.get_running_loop()
    pumps = [
        loop.create_task(_pump(reader, writer, tcp_writer)),
        loop.create_task(_pump(tcp_reader, tcp_writer, writer)),
    ]
    try:
        # Both directions to their EOF; a reset either way ends both.
        for finished in asyncio.as_completed(pumps):
            try:
                await finished
            except (ConnectionError, OSError):
                break
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        tcp_writer.close()


def _valid_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _valid_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


class PtyClient:
    """The connection a pty is attached to (at most one at a time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.ended: "asyncio.Future[None]" = loop.create_future()

    def send(self, frame: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(frame)

    def congested(self) -> bool:
        return _write_buffered(self.writer) > PTY_OUTPUT_HIGH_WATER

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass

    def end(self, abort: bool = False) -> None:
        """Closes the connection; ``abort`` drops unsent output (a client taken over may never read it)."""
        if not self.ended.done():
            self.ended.set_result(None)
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()


class PtySession:
    """A shell on a pseudo-terminal; it outlives its client for the grace period."""

    def __init__(self, manager: "PtyManager", pty_id: str, master_fd: int,
                 process: subprocess.Popen, exited: "asyncio.Future[int]") -> None:
        self.manager = manager
        self.loop = manager.loop
        self.id = pty_id
        self.master_fd = master_fd
        self.process = process
        self.exited = exited
        self.client: Optional[PtyClient] = None
        self.scrollback = bytearray()
        self.finished = False
        self._reading = False
        self._resume_task: Optional["asyncio.Task[None]"] = None
        self._grace_timer: Optional[asyncio.TimerHandle] = None
        self._input_lock = asyncio.Lock()
        self._set_reading(True)
        exited.add_done_callback(lambda _: self.loop.create_task(self._finish()))

    # -- clients ------------------------------------------------------------

    def attach(self, client: PtyClient, reply: bytes) -> None:
        """Makes ``client`` the attached one: ``reply`` (the ok line), the scrollback, then live output."""
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        previous, self.client = self.client, client
        if previous is not None:
            previous.end(abort=True)
        client.send(reply)
        if self.scrollback:
            client.send(contract.encode_frame(contract.PTY_FRAME_DATA, bytes(self.scrollback)))
        self._stop_waiting_for_drain()
        self._set_reading(True)

    def detach(self, client: PtyClient) -> None:
        if self.client is not client:
            return  # taken over already
        self.client = None
        self._stop_waiting_for_drain()
        if self.finished:
            return
        self._set_reading(True)  # keep the shell going: output only feeds the scrollback now
        grace = self.manager.grace
        self._grace_timer = self.loop.call_later(grace, self.expire)

    def expire(self) -> None:
        """The grace period ended with no client: forget the shell and hang it up."""
        self._grace_timer = None
        self.manager.forget(self)
        self.hang_up()

    def hang_up(self) -> None:
        if self.exited.done():
            return
        _kill_group(self.process.pid, signal.SIGHUP)
        _kill_group(self.process.pid, signal.SIGCONT)  # a stopped group would not act on the hang-up
        self.loop.call_later(contract.PTY_KILL_AFTER_S, self._kill_if_alive)

    def _kill_if_alive(self) -> None:
        if not self.exited.done():
            _kill_group(self.process.pid, signal.SIGKILL)

    # -- input from the client --------------------------------------------------

    async def write_input(self, data: bytes, client_writer: asyncio.StreamWriter) -> None:
        """Writes keystrokes to the master; while the terminal does not take them, the
        client's connection stops being read (back-pressure instead of buffering)."""
        view = memoryview(data)
        async with self._input_lock:
            while view and not self.finished:
                try:
                    view = view[os.write(self.master_fd, view):]
                    continue
                except BlockingIOError:
                    pass
                except OSError:
                    return  # the terminal is gone; the shell's exit ends the session
                _pause_reading(client_writer)
                try:
                    await self._wait_writable()
                finally:
                    _resume_reading(client_writer)

    async def _wait_writable(self) -> None:
        writable = self.loop.create_future()
        self.loop.add_writer(self.master_fd, lambda: writable.done() or writable.set_result(None))
        try:
            await asyncio.wait([writable, self.exited], timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not self.finished:
                self.loop.remove_writer(self.master_fd)

    def resize(self, rows: int, cols: int) -> None:
        if self.finished:
            return
        import fcntl
        import struct
        import termios

        try:
            fcntl.ioctl(self.master_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        except OSError:
            pass

    # -- output to the client ---------------------------------------------------

    def _set_reading(self, on: bool) -> None:
        if on == self._reading or self.finished:
            return
        self._reading = on
        if on:
            self.loop.add_reader(self.master_fd, self._on_readable)
        else:
            self.loop.remove_reader(self.master_fd)

    def _on_readable(self) -> None:
        # A pty read returns at most a few KiB: gather what is there into one frame.
        chunks: List[bytes] = []
        size = 0
        ended = False
        while size < READ_CHUNK:
            try:
                data = os.read(self.master_fd, READ_CHUNK - size)
            except BlockingIOError:
                break
            except OSError:  # EIO: every slave end is closed; the shell's exit ends the session
                data = b""
            if not data:
                ended = True
                break
            chunks.append(data)
            size += len(data)
        if chunks:
            self._output(b"".join(chunks))
        if ended:
            self._set_reading(False)
            return
        client = self.client
        if client is not None and client.congested():
            self._set_reading(False)
            self._resume_task = self.loop.create_task(self._resume_after_drain(client))

    async def _resume_after_drain(self, client: PtyClient) -> None:
        await client.drain()
        if self.client is client:
            self._resume_task = None
            self._set_reading(True)

    def _stop_waiting_for_drain(self) -> None:
        if self._resume_task is not None:
            self._resume_task.cancel()
            self._resume_task = None

    def _output(self, data: bytes) -> None:
        self.scrollback += data
        excess = len(self.scrollback) - contract.PTY_SCROLLBACK_BYTES
        if excess > 0:
            del self.scrollback[:excess]
        if self.client is not None:
            self.client.send(contract.encode_frame(contract.PTY_FRAME_DATA, data))

    async def _finish(self) -> None:
        """The shell ended: flush its last output, send EXIT, close the terminal."""
        self._stop_waiting_for_drain()
        self._set_reading(False)
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        self.manager.forget(self)
        drained = 0
        while drained < PTY_FINAL_OUTPUT_BYTES:  # bounded: a background job may keep writing
            try:
                data = os.read(self.master_fd, READ_CHUNK)
            except OSError:  # BlockingIOError (all read) or EIO (no writer left)
                break
            if not data:
                break
            drained += len(data)
            self._output(data)
            client = self.client
            if client is not None and client.congested():
                await client.drain()
        self.finished = True
        code = self.exited.result()
        client, self.client = self.client, None
        if client is not None:
            client.send(contract.encode_json_frame(contract.PTY_FRAME_EXIT, {"code": code}))
            client.end()
        try:
            os.close(self.master_fd)  # hangs up whatever still holds the terminal
        except OSError:
            pass


class PtyManager:
    """The live ptys of this runner, by id."""

    def __init__(self, loop: asyncio.AbstractEventLoop, reaper: ChildReaper) -> None:
        self.loop = loop
        self.reaper = reaper
        self.sessions: Dict[str, PtySession] = {}
        self.grace = float(os.environ.get(contract.PTY_GRACE_ENV, contract.DEFAULT_PTY_GRACE_S))

    def forget(self, session: PtySession) -> None:
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]

    def hang_up_all(self) -> None:
        for session in list(self.sessions.values()):
            self.forget(session)
            session.hang_up()

    def start(self, argv: List[str], rows: int, cols: int) -> PtySession:
        """Starts ``argv`` as the session leader of a new terminal; raises OSError if it cannot."""
        import secrets

        master_fd, slave_fd = os.openpty()  # both non-inheritable
        try:
            _set_window_size(slave_fd, rows, cols)
            env = dict(os.environ)
            env.pop(SOCKET_ENV, None)
            env["TERM"] = contract.PTY_TERM
            process = subprocess.Popen(
                argv, stdin=slave_fd, stdout=slave_fd, stderr=slave_fd, cwd=_pty_cwd(), env=env,
                start_new_session=True, preexec_fn=_take_controlling_terminal,
            )
        except BaseException:
            os.close(master_fd)
            raise
        finally:
            os.close(slave_fd)
        os.set_blocking(master_fd, False)
        exited = self.reaper.watch(process.pid)
        exited.add_done_callback(_record_returncode(process))
        pty_id = secrets.token_hex(8)
        session = PtySession(self, pty_id, master_fd, process, exited)
        self.sessions[pty_id] = session
        return session


def _take_controlling_terminal() -> None:
    """In the child, after setsid(): make the pty (now fd 0) its controlling terminal."""
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _set_window_size(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _default_shell() -> List[str]:
    shell = os.environ.get("SHELL")
    if shell and os.access(shell, os.X_OK):
        return [shell]
    return ["/bin/bash"] if os.access("/bin/bash", os.X_OK) else ["/bin/sh"]


def _pty_cwd() -> Optional[str]:
    for directory in (os.environ.get("HOME"), "/home/work"):
        if directory and os.path.isdir(directory):
            return directory
    return None


# --------------------------------------------------------------------------
# Runner side: the socket server
# --------------------------------------------------------------------------


class Connection:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def send(self, message: Dict[str, Any], request_id: Any = None) -> None:
        if self.writer.is_closing():
            return
        if request_id is not None:
            message["id"] = request_id
        self.writer.write(json.dumps(message).encode("utf-8") + b"\n")

    def buffered_bytes(self) -> int:
        if self.writer.is_closing():
            return 0
        return self.writer.transport.get_write_buffer_size()

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass


class Runner:
    def __init__(self, socket_path: str, batch_argv: Optional[List[str]]) -> None:
        self.socket_path = socket_path
        self.batch_argv = batch_argv
        self.loop = asyncio.get_running_loop()
        self.reaper = ChildReaper(self.loop)
        self.worker = Worker(self.loop, self.reaper)
        self.execute_lock = asyncio.Lock()
        self.stopping: asyncio.Future[int] = self.loop.create_future()
        self.interrupt_grace = float(os.environ.get(INTERRUPT_GRACE_ENV, DEFAULT_INTERRUPT_GRACE))
        self.batch_process: Optional[subprocess.Popen] = None
        self.connections: Dict["asyncio.Task[Any]", asyncio.StreamWriter] = {}
        self.ptys = PtyManager(self.loop, self.reaper)
        self.services = self._service_manager()

    async def run(self) -> int:
        # Handlers first: as PID 1 an unhandled SIGTERM would be ignored, not fatal.
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._on_stop_signal, sig)
        try:
            listener = bind_socket_atomically(self.socket_path)
        except OSError as error:
            print(
                "corral-runner: cannot listen on %s: %s (uid %d must be able to create files "
                "in that directory)" % (self.socket_path, error.strerror or error, os.getuid()),
                file=sys.stderr, flush=True,
            )
            return 1
        server = await asyncio.start_unix_server(
            self._serve_connection, sock=listener, limit=MAX_REQUEST_BYTES,
        )
        await self.services.open()
        if self.batch_argv is not None:
            self.loop.create_task(self._run_batch(self.batch_argv))
        else:
            self.loop.call_soon(self.worker.start)  # after the socket is up
        try:
            exit_code = await self.stopping
        finally:
            server.close()
            _unlink_quietly(self.socket_path)
            self.worker.closed = True
            self.ptys.hang_up_all()
            self.services.close()
            await self._stop_worker()
            await self._close_connections()
            # Before asyncio.run closes the loop (its self-pipe first, its signal handlers after): a
            # SIGCHLD in between would be written to a closed wakeup fd and print a traceback into the
            # session's logs.
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                self.loop.remove_signal_handler(sig)
        return exit_code

    def _service_manager(self) -> Any:
        runner_dir = os.path.dirname(os.path.abspath(self.socket_path))
        session_id = os.environ.get(contract.SESSION_ID_ENV, "")
        values = {"home": runner_services.home_dir(), "runner_dir": runner_dir}
        definitions = []
        try:
            for definition in service_defs.definitions_from_env(os.environ.get(service_defs.SERVICES_ENV, "")):
                base_url = service_defs.http_base_path(session_id, definition.name)
                definitions.append(definition.rendered(dict(values, base_url=base_url)))
        except (ValueError, KeyError, TypeError) as error:
            print("corral-runner: ignoring %s: %s" % (service_defs.SERVICES_ENV, error), file=sys.stderr, flush=True)
            definitions = []

        def prepare_sshd(definition: Any) -> None:
            runner_services.prepare_sshd(definition, runner_dir, service_defs.SSH_DIR, service_defs.SSHD_DIR)

        return runner_services.ServiceManager(
            self.loop, self.reaper, definitions, runner_dir, service_defs.socket_name,
            {service_defs.SSHD: prepare_sshd}, splice_to_port, bind_socket_atomically,
        )

    def stop(self, exit_code: int) -> None:
        if not self.stopping.done():
            self.stopping.set_result(exit_code)

    def _on_stop_signal(self, sig: int) -> None:
        if self.batch_process is not None:
            _kill_group(self.batch_process.pid, sig)  # the runner exits when the command does
        elif self.batch_argv is not None:
            self.stop(128 + sig)  # stopped before the command could start
        else:
            self.stop(0)

    async def _close_connections(self) -> None:
        for writer in list(self.connections.values()):
            writer.close()
        if self.connections:
            await asyncio.wait(list(self.connections), timeout=0.5)

    async def _stop_worker(self) -> None:
        if self.worker.exited is None or self.worker.exited.done():
            return
        self.worker.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(self.worker.exited), 0.3)
        except asyncio.TimeoutError:
            self.worker.kill()

    async def _run_batch(self, argv: List[str]) -> None:
        try:
            self.batch_process = subprocess.Popen(argv, start_new_session=True)
        except FileNotFoundError as error:
            print("corral-runner: %s: %s" % (argv[0], error.strerror), file=sys.stderr, flush=True)
            self.stop(127)
            return
        except PermissionError as error:
            print("corral-runner: %s: %s" % (argv[0], error.strerror), file=sys.stderr, flush=True)
            self.stop(126)
            return
        exited = self.reaper.watch(self.batch_process.pid)
        exited.add_done_callback(_record_returncode(self.batch_process))
        self.stop(await exited)

    # -- requests -------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(writer)
        tasks: List["asyncio.Task[None]"] = []
        this_task = asyncio.current_task()
        assert this_task is not None
        self.connections[this_task] = writer
        first = True
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    connection.send({"op": "error", "error": "request larger than %d bytes" % MAX_REQUEST_BYTES})
                    break
                except (ConnectionError, OSError):
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                request = self._parse_request(connection, line)
                is_first, first = first, False
                if request is None:
                    continue
                if is_first and request.get("op") in STREAM_OPS:
                    await self._serve_stream(request, reader, writer)
                    break
                task = self._handle_request(connection, request)
                if task is not None:
                    tasks.append(task)
                    tasks = [t for t in tasks if not t.done()]
                await connection.drain()
            # Let executes already sent on this connection finish (their output is dropped).
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            writer.close()
            self.connections.pop(this_task, None)

    @staticmethod
    def _parse_request(connection: Connection, line: bytes) -> Optional[Dict[str, Any]]:
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            connection.send({"op": "error", "error": "invalid JSON: %s" % error})
            return None
        if not isinstance(request, dict):
            connection.send({"op": "error", "error": "a request must be a JSON object"})
            return None
        return request

    def _handle_request(self, connection: Connection, request: Dict[str, Any]) -> Optional["asyncio.Task[None]"]:
        request_id = request.get("id")
        op = request.get("op")
        if op == "ping":
            connection.send({
                "op": "pong", "pid": os.getpid(), "python": "%d.%d.%d" % sys.version_info[:3],
                "mode": "batch" if self.batch_argv is not None else "interactive",
                "busy": self.worker.busy, "user": runner_services.session_user(),
            }, request_id)
        elif op == "execute":
            code = request.get("code")
            if not isinstance(code, str):
                connection.send({"op": "error", "error": "execute needs a string 'code'"}, request_id)
                return None
            return self.loop.create_task(self._execute(connection, code, request_id))
        elif op == "services":
            connection.send({"op": "services", "services": self.services.infos()}, request_id)
        elif op in ("service_start", "service_stop"):
            service = self.services.get(request.get("name"))
            if service is None:
                known = ", ".join(sorted(self.services.services)) or "none"
                connection.send({"op": "error", "error": "no service named %r (this session has: %s)"
                                 % (request.get("name"), known)}, request_id)
                return None
            return self.loop.create_task(self._service_op(connection, op, service, request, request_id))
        elif op == "interrupt":
            interrupted = self.worker.interrupt(self.interrupt_grace)
            connection.send({"op": "interrupt_ok", "interrupted": interrupted}, request_id)
        elif op == "shutdown":
            connection.send({"op": "shutdown_ok"}, request_id)
            if self.batch_process is not None:
                _kill_group(self.batch_process.pid, signal.SIGTERM)
            else:
                self.stop(0)
        elif op in STREAM_OPS:
            connection.send({"op": "error", "error": "%s must be the first request on a new connection" % op},
                            request_id)
        else:
            connection.send({"op": "error", "error": "unknown op: %r" % (op,)}, request_id)
        return None

    async def _service_op(
        self, connection: Connection, op: str, service: Any, request: Dict[str, Any], request_id: Any
    ) -> None:
        if op == "service_stop":
            info = await self.services.stop(service)
        else:
            wait_s = request.get("wait_s", 0)
            if isinstance(wait_s, bool) or not isinstance(wait_s, (int, float)) or wait_s < 0:
                wait_s = 0
            info = await self.services.ensure(service, min(float(wait_s), 3600.0))
        connection.send({"op": "service", "service": info}, request_id)

    # -- streams ("connect", "pty"): the first request on a connection ------------

    async def _serve_stream(
        self, request: Dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        def answer(message: Dict[str, Any]) -> bytes:
            if request.get("id") is not None:
                message["id"] = request["id"]
            return json.dumps(message).encode("utf-8") + b"\n"

        if request["op"] == "connect":
            await self._serve_connect(request, reader, writer, answer)
        else:
            await self._serve_pty(request, reader, writer, answer)

    async def _serve_connect(
        self, request: Dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        answer: Callable[[Dict[str, Any]], bytes],
    ) -> None:
        port = request.get("port")
        if not _valid_port(port):
            writer.write(answer({"ok": False, "error": "connect needs an integer 'port' in 1..65535, got %r" % (port,)}))
            return
        await splice_to_port(reader, writer, port, lambda error: writer.write(answer(
            {"ok": False, "error": error} if error else {"ok": True})))

    async def _serve_pty(
        self, request: Dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        answer: Callable[[Dict[str, Any]], bytes],
    ) -> None:
        rows, cols = request.get("rows", 24), request.get("cols", 80)
        attach, command = request.get("attach"), request.get("command")
        if not (_valid_size(rows) and _valid_size(cols)):
            writer.write(answer({"ok": False, "error": "pty needs integer 'rows' and 'cols' in 1..65535"}))
            return
        if attach is not None and not isinstance(attach, str):
            writer.write(answer({"ok": False, "error": "'attach' must be a pty id (a string) or null"}))
            return
        if command is not None and not (
            isinstance(command, list) and command and all(isinstance(part, str) for part in command)
        ):
            writer.write(answer({"ok": False, "error": "'command' must be a non-empty list of strings or null"}))
            return
        if attach is not None:
            session = self.ptys.sessions.get(attach)
            if session is None:
                writer.write(answer({"ok": False, "error": "no live pty %r (it ended, or its grace period "
                                                           "expired)" % (attach,)}))
                return
            session.resize(rows, cols)
        else:
            argv = command or _default_shell()
            try:
                session = self.ptys.start(argv, rows, cols)
            except OSError as error:
                writer.write(answer({"ok": False, "error": "cannot start %s: %s" % (argv[0], error.strerror or error)}))
                return
        client = PtyClient(self.loop, writer)
        session.attach(client, answer({"ok": True, "pty": session.id}))
        frames = self.loop.create_task(self._read_pty_frames(session, client, reader, writer))
        try:
            await asyncio.wait([frames, client.ended], return_when=asyncio.FIRST_COMPLETED)
        finally:
            frames.cancel()
            await asyncio.gather(frames, return_exceptions=True)
            session.detach(client)

    async def _read_pty_frames(
        self, session: PtySession, client: PtyClient, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        def violation(error: str) -> None:
            client.send(contract.encode_json_frame(contract.PTY_FRAME_ERROR, {"error": error}))
            client.end()  # nothing after the ERROR frame

        while True:
            try:
                frame = await contract.read_frame(reader)
            except contract.FrameError as error:
                return violation(str(error))
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                return
            if frame is None:
                return
            frame_type, payload = frame
            if frame_type == contract.PTY_FRAME_DATA:
                await session.write_input(payload, writer)
            elif frame_type == contract.PTY_FRAME_RESIZE:
                try:
                    size = json.loads(payload.decode("utf-8"))
                    rows, cols = size["rows"], size["cols"]
                except (UnicodeDecodeError, ValueError, TypeError, KeyError):
                    return violation("a RESIZE frame carries JSON {\"rows\": R, \"cols\": C}")
                if not (_valid_size(rows) and _valid_size(cols)):
                    return violation("RESIZE needs integer rows and cols in 1..65535")
                session.resize(rows, cols)
            elif frame_type == contract.PTY_FRAME_PING:
                client.send(contract.encode_frame(contract.PTY_FRAME_PONG, payload))
            elif frame_type == contract.PTY_FRAME_PONG:
                pass
            else:
                return violation("unexpected frame type %d" % frame_type)
            await client.drain()  # a client that does not read its PONGs is not read either

    async def _execute(self, connection: Connection, code: str, request_id: Any) -> None:
        async with self.execute_lock:
            try:
                result = await self.worker.execute(code, OutputSink(connection, request_id))
            except Exception as error:  # noqa: BLE001 - report, keep serving
                result = {"status": "error", "exit_code": 1, "error": "runner failure: %r" % (error,)}
        message: Dict[str, Any] = {"op": "result"}
        message.update(result)
        connection.send(message, request_id)
        await connection.drain()


def bind_socket_atomically(path: str) -> "Any":
    """Binds under a temporary name, opens it to everyone, then renames into place.

    The agent polls for ``path``; once it exists it is already listening.
    """
    import socket

    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    temporary = "%s.%d.tmp" % (path, os.getpid())
    _unlink_quietly(temporary)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(temporary)
        os.chmod(temporary, 0o666)
        listener.listen(64)
        os.rename(temporary, path)
    except BaseException:
        listener.close()
        _unlink_quietly(temporary)
        raise
    listener.setblocking(False)
    return listener


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def parse_arguments(argv: List[str]) -> Optional[List[str]]:
    """Returns the batch command, or None for interactive mode."""
    if not argv:
        return None
    if argv[0] != "--batch":
        raise SystemExit("usage: runner.py [--batch -- COMMAND...]")
    command = argv[1:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise SystemExit("runner.py: --batch needs a command")
    return command


async def _main_async(socket_path: str, batch_argv: Optional[List[str]]) -> int:
    return await Runner(socket_path, batch_argv).run()


def main(argv: Optional[List[str]] = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["--worker"]:
        worker_main(int(arguments[1]), int(arguments[2]))
        return 0
    batch_argv = parse_arguments(arguments)
    socket_path = os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET_PATH
    return asyncio.run(_main_async(socket_path, batch_argv))


if __name__ == "__main__":
    sys.exit(main())
