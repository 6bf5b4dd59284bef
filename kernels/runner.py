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
    anything else                 -> {"op": "error", "error": S}

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


def _load_contract() -> Any:
    """``contract.py`` next to this file, whether imported from the corral package or run
    as ``/opt/corral/runner.py``. Loaded by path and kept out of ``sys.modules``, so it
    works whatever ``sys.path`` is (``PYTHONSAFEPATH``) and never shadows a user's module."""
    if __package__:
        from . import contract

        return contract
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "contract.py")
    spec = importlib.util.spec_from_file_location("corral_runner_contract", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


contract = _load_contract()
DEFAULT_SOCKET_PATH = contract.CONTAINER_RUNNER_SOCKET
SOCKET_ENV = contract.RUNNER_SOCKET_ENV
INTERRUPT_GRACE_ENV = "CORRAL_INTERRUPT_GRACE"  # seconds before an unresponsive worker is killed
DEFAULT_INTERRUPT_GRACE = 5.0
MAX_REQUEST_BYTES = 64 * 1024 * 1024
READ_CHUNK = 65536
WRITE_HIGH_WATER = 4 * 1024 * 1024  # pause reading a worker pipe while a client lags this much


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
    """Runs a cell; a trailing expression is echoed like the interactive prompt does."""
    import ast  # worker-only imports stay out of the runner's start-up path

    tree = ast.parse(code, "<cell>", "exec")
    last_expression = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last_expression = ast.Interactive(body=[tree.body.pop()])
    exec(compile(tree, "<cell>", "exec"), namespace)
    if last_expression is not None:
        exec(compile(last_expression, "<cell>", "single"), namespace)


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
        text = self._decoders[stream].decode(data)
        if not text:
            return
        if self.sink is not None:
            self.sink.write(stream, text)
        else:  # output with no execute in flight (a background thread, say): container logs
            target = sys.stdout if stream == "stdout" else sys.stderr
            target.write(text)
            target.flush()

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
            execution.set_result({
                "status": status,
                "exit_code": exit_code if exit_code > 0 else 1,
                "error": "the interpreter exited with code %d; it will be restarted "
                         "and previously defined variables are lost" % exit_code,
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
            await self._stop_worker()
            await self._close_connections()
        return exit_code

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
                task = self._handle_request(connection, line)
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

    def _handle_request(self, connection: Connection, line: bytes) -> Optional["asyncio.Task[None]"]:
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            connection.send({"op": "error", "error": "invalid JSON: %s" % error})
            return None
        if not isinstance(request, dict):
            connection.send({"op": "error", "error": "a request must be a JSON object"})
            return None
        request_id = request.get("id")
        op = request.get("op")
        if op == "ping":
            connection.send({
                "op": "pong", "pid": os.getpid(), "python": "%d.%d.%d" % sys.version_info[:3],
                "mode": "batch" if self.batch_argv is not None else "interactive",
                "busy": self.worker.busy,
            }, request_id)
        elif op == "execute":
            code = request.get("code")
            if not isinstance(code, str):
                connection.send({"op": "error", "error": "execute needs a string 'code'"}, request_id)
                return None
            return self.loop.create_task(self._execute(connection, code, request_id))
        elif op == "interrupt":
            interrupted = self.worker.interrupt(self.interrupt_grace)
            connection.send({"op": "interrupt_ok", "interrupted": interrupted}, request_id)
        elif op == "shutdown":
            connection.send({"op": "shutdown_ok"}, request_id)
            if self.batch_process is not None:
                _kill_group(self.batch_process.pid, signal.SIGTERM)
            else:
                self.stop(0)
        else:
            connection.send({"op": "error", "error": "unknown op: %r" % (op,)}, request_id)
        return None

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
