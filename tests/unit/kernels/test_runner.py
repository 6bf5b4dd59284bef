"""kernels/runner.py on the host (no Docker): protocol, query mode, batch mode, signals."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.agent.runner_client import RunnerClient

from .runner_process import RawConnection, RunnerProcess


@pytest.fixture
async def client(runner: RunnerProcess) -> AsyncIterator[RunnerClient]:
    connection = await RunnerClient.connect(runner.socket_path)
    try:
        yield connection
    finally:
        await connection.close()


# -- startup and ping ---------------------------------------------------------


async def test_socket_appears_fast_and_is_open_to_every_uid() -> None:
    process = await RunnerProcess.start()
    try:
        seconds = await process.wait_for_socket()
        # Includes the interpreter's own start-up; the runner binds before it starts the worker.
        assert seconds < 1.0
        mode = stat.S_IMODE(os.stat(process.socket_path).st_mode)
        assert mode == 0o666
        assert sorted(p.name for p in process.directory.iterdir()) == ["runner.sock"]  # temp name renamed away
    finally:
        await process.stop()


async def test_the_contract_module_works_under_safe_path_and_shadows_no_user_module(tmp_path: Path) -> None:
    """runner.py loads its sibling contract.py by path: no reliance on sys.path[0]
    (PYTHONSAFEPATH drops it) and nothing left in sys.modules for user code to trip on."""
    (tmp_path / "contract.py").write_text("OWNER = 'user'\n")
    process = await RunnerProcess.start(env={"PYTHONSAFEPATH": "1"})
    try:
        await process.wait_for_socket()
        async with await RunnerClient.connect(process.socket_path) as client:
            result = await client.execute(f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport contract\n"
                                          "print(contract.OWNER)")
        assert (result.status, result.stdout) == ("ok", "user\n")
    finally:
        await process.stop()


async def test_ping_reports_pid_and_python(runner: RunnerProcess) -> None:
    connection = await RawConnection.open(runner.socket_path)
    await connection.send({"op": "ping"})
    pong = await connection.receive()
    assert pong["op"] == "pong"
    assert pong["pid"] == runner.process.pid
    assert re.fullmatch(r"3\.\d+\.\d+\S*", pong["python"])
    assert pong["mode"] == "interactive"
    await connection.close()


async def test_several_requests_share_one_connection(runner: RunnerProcess) -> None:
    connection = await RawConnection.open(runner.socket_path)
    for _ in range(3):
        await connection.send({"op": "ping"})
        assert (await connection.receive())["op"] == "pong"
    await connection.send({"op": "execute", "code": "print('x')"})
    messages = await connection.receive_until_result()
    assert messages[-1]["status"] == "ok"
    await connection.send({"op": "ping"})
    assert (await connection.receive())["op"] == "pong"
    await connection.close()


async def test_request_ids_are_echoed(runner: RunnerProcess) -> None:
    connection = await RawConnection.open(runner.socket_path)
    await connection.send({"op": "execute", "code": "print(1)", "id": "abc"})
    messages = await connection.receive_until_result()
    assert {message["id"] for message in messages} == {"abc"}
    await connection.close()


# -- execute --------------------------------------------------------------------


async def test_execute_streams_output_while_code_runs(client: RunnerClient) -> None:
    started = time.monotonic()
    arrivals: list[tuple[float, dict]] = []
    async for message in client.execute_stream("import time\nprint('first')\ntime.sleep(1)\nprint('second')"):
        arrivals.append((time.monotonic() - started, message))
    outputs = [(at, message["data"]) for at, message in arrivals if message["op"] == "output"]
    result_at, result = arrivals[-1]
    assert result == {"op": "result", "status": "ok", "exit_code": 0, "error": None, "id": result["id"]}
    assert "".join(data for _, data in outputs) == "first\nsecond\n"
    first_at = outputs[0][0]
    assert result_at >= 1.0
    assert first_at < result_at - 0.7, "the first line must arrive before the code finishes"


async def test_variables_persist_between_executes(client: RunnerClient) -> None:
    assert (await client.execute("x = 20\ndef double(v):\n    return 2 * v")).status == "ok"
    result = await client.execute("print(double(x) + 2)")
    assert result.stdout == "42\n"


async def test_trailing_expression_is_echoed(client: RunnerClient) -> None:
    result = await client.execute("a = 6\na * 7")
    assert result.stdout == "42\n"
    assert (await client.execute("None")).stdout == ""


async def test_exception_gives_error_with_traceback_and_keeps_state(client: RunnerClient) -> None:
    await client.execute("kept = 'yes'")
    result = await client.execute("def fail():\n    raise ValueError('boom')\nfail()")
    assert result.status == "error"
    assert result.exit_code == 1
    assert result.error is not None
    assert result.error.startswith("Traceback (most recent call last):")
    assert 'File "<cell>", line 3' in result.error
    assert "ValueError: boom" in result.error
    assert "runner.py" not in result.error  # the runner's own frames are hidden
    assert (await client.execute("print(kept)")).stdout == "yes\n"


async def test_syntax_error_is_reported(client: RunnerClient) -> None:
    result = await client.execute("def broken(:\n    pass")
    assert result.status == "error"
    assert "SyntaxError" in (result.error or "")


async def test_output_of_subprocesses_is_captured(client: RunnerClient) -> None:
    code = (
        "import os, subprocess, sys\n"
        "os.system('echo from-shell; echo shell-err >&2')\n"
        "subprocess.run([sys.executable, '-c', 'print(\"from-child\")'])\n"
        "print('from-python', file=sys.stderr)\n"
    )
    result = await client.execute(code)
    assert result.status == "ok"
    assert result.stdout == "from-shell\nfrom-child\n"
    assert result.stderr == "shell-err\nfrom-python\n"


async def test_large_and_multibyte_output_arrives_whole(client: RunnerClient) -> None:
    result = await client.execute("print('é' * 300000)\nprint('x' * 2_000_000)")
    assert result.stdout == "é" * 300000 + "\n" + "x" * 2_000_000 + "\n"


async def test_system_exit_reports_code_and_keeps_interpreter(client: RunnerClient) -> None:
    await client.execute("marker = 1")
    result = await client.execute("import sys\nsys.exit(4)")
    assert (result.status, result.exit_code) == ("error", 4)
    assert (await client.execute("import sys\nsys.exit(0)")).status == "ok"
    assert (await client.execute("print(marker)")).stdout == "1\n"


async def test_worker_crash_is_reported_and_interpreter_restarted(client: RunnerClient) -> None:
    await client.execute("lost = 1")
    result = await client.execute("import os\nprint('bye', flush=True)\nos._exit(7)")
    assert result.status == "error"
    assert result.exit_code == 7
    assert result.stdout == "bye\n"
    assert "restarted" in (result.error or "")
    after = await client.execute("print('lost' in globals())")
    assert after.status == "ok"
    assert after.stdout == "False\n"


async def test_worker_dying_while_idle_is_replaced_on_the_next_execute(client: RunnerClient) -> None:
    code = "import os, threading\nold = 1\nthreading.Timer(0.2, os._exit, (3,)).start()"
    assert (await client.execute(code)).status == "ok"
    await asyncio.sleep(0.6)
    after = await client.execute("print('old' in globals())")
    assert (after.status, after.stdout) == ("ok", "False\n")


async def test_input_gets_end_of_file_instead_of_hanging(client: RunnerClient) -> None:
    result = await asyncio.wait_for(client.execute("input()"), 10)
    assert result.status == "error"
    assert "EOFError" in (result.error or "")


async def test_concurrent_executes_are_serialized(runner: RunnerProcess) -> None:
    first = await RunnerClient.connect(runner.socket_path)
    second = await RunnerClient.connect(runner.socket_path)
    try:
        finished: list[str] = []

        async def run(client: RunnerClient, name: str, code: str) -> str:
            result = await client.execute(code)
            finished.append(name)
            return result.stdout

        slow = asyncio.create_task(run(first, "slow", "import time\nshared = 1\ntime.sleep(0.8)\nprint('slow done')"))
        await asyncio.sleep(0.2)
        fast = asyncio.create_task(run(second, "fast", "print('fast sees', shared)"))
        assert await slow == "slow done\n"
        assert await fast == "fast sees 1\n"
        assert finished == ["slow", "fast"]
    finally:
        await first.close()
        await second.close()


# -- interrupt ----------------------------------------------------------------------


async def test_interrupt_stops_a_sleep_and_keeps_state(runner: RunnerProcess, client: RunnerClient) -> None:
    await client.execute("before = 'kept'")
    started = time.monotonic()
    execution = asyncio.create_task(client.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(30)"))
    other = await RunnerClient.connect(runner.socket_path)
    try:
        while not (await other.ping())["busy"]:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        reply = await other.interrupt()
        assert reply["op"] == "interrupt_ok" and reply["interrupted"] is True
        result = await asyncio.wait_for(execution, 10)
    finally:
        await other.close()
    assert time.monotonic() - started < 5
    assert result.status == "interrupted"
    assert result.stdout == "sleeping\n"
    assert (await client.execute("print(before)")).stdout == "kept\n"


async def test_interrupt_on_the_same_connection(client: RunnerClient) -> None:
    execution = asyncio.create_task(client.execute("import os\nos.system('sleep 30')\nimport time\ntime.sleep(30)"))
    await asyncio.sleep(0.5)
    await client.interrupt()  # stops the shell's sleep (same process group) ...
    await asyncio.sleep(0.3)
    await client.interrupt()  # ... and then Python's
    result = await asyncio.wait_for(execution, 10)
    assert result.status == "interrupted"


async def test_interrupt_when_idle_is_harmless(client: RunnerClient) -> None:
    reply = await client.interrupt()
    assert reply["interrupted"] is False
    assert (await client.execute("print('fine')")).stdout == "fine\n"


async def test_interrupt_kills_a_worker_that_ignores_it() -> None:
    process = await RunnerProcess.start(env={"CORRAL_INTERRUPT_GRACE": "0.5"})
    try:
        await process.wait_for_socket()
        client = await RunnerClient.connect(process.socket_path)
        code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(30)"
        execution = asyncio.create_task(client.execute(code))
        await asyncio.sleep(0.5)
        await client.interrupt()
        result = await asyncio.wait_for(execution, 10)
        assert result.status == "interrupted"
        assert "restarted" in (result.error or "")
        assert (await client.execute("print('new interpreter')")).stdout == "new interpreter\n"
        await client.close()
    finally:
        await process.stop()


# -- bad requests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [b"not json", b"[1, 2]", b'{"op": "fly"}', b'{"no_op": 1}', b'{"op": "execute", "code": 5}', b"\xff\xfe"],
)
async def test_bad_requests_get_an_error_and_the_connection_stays_usable(runner: RunnerProcess, line: bytes) -> None:
    connection = await RawConnection.open(runner.socket_path)
    await connection.send_line(line)
    reply = await connection.receive()
    assert reply["op"] == "error"
    assert reply["error"]
    await connection.send({"op": "ping"})
    assert (await connection.receive())["op"] == "pong"
    await connection.close()


# -- lifecycle ---------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_interactive_runner_exits_promptly_on_signal(sig: signal.Signals) -> None:
    process = await RunnerProcess.start()
    try:
        await process.wait_for_socket()
        client = await RunnerClient.connect(process.socket_path)
        assert (await client.execute("print(1)")).status == "ok"
        busy = asyncio.create_task(client.execute("import time\ntime.sleep(30)"))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        process.signal(sig)
        assert await process.wait() == 0
        assert time.monotonic() - started < 1.0
        assert not process.socket_path.exists()
        busy.cancel()
        await client.close()
    finally:
        await process.stop()


async def test_shutdown_request_exits_cleanly(runner: RunnerProcess) -> None:
    connection = await RawConnection.open(runner.socket_path)
    await connection.send({"op": "shutdown"})
    assert (await connection.receive())["op"] == "shutdown_ok"
    assert await runner.wait() == 0
    await connection.close()


# -- batch mode -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "exit_code"),
    [
        (["true"], 0),
        (["sh", "-c", "exit 3"], 3),
        (["sh", "-c", "kill -KILL $$"], 128 + signal.SIGKILL),
        (["/nonexistent/program"], 127),
    ],
)
async def test_batch_exit_code_is_the_commands(command: list[str], exit_code: int) -> None:
    process = await RunnerProcess.start("--batch", "--", *command)
    try:
        assert await process.wait() == exit_code
        assert not process.socket_path.exists()
    finally:
        await process.stop()


async def test_batch_output_goes_to_the_runners_own_stdout_and_stderr() -> None:
    process = await RunnerProcess.start(
        "--batch", "--", "sh", "-c", "echo out-line; echo err-line >&2", capture_output=True
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.process.communicate(), 10)
        assert stdout == b"out-line\n"
        assert stderr == b"err-line\n"
        assert process.process.returncode == 0
    finally:
        await process.stop()


async def test_batch_serves_ping_while_running_and_forwards_sigterm() -> None:
    process = await RunnerProcess.start("--batch", "--", "sleep", "30")
    try:
        await process.wait_for_socket()
        client = await RunnerClient.connect(process.socket_path)
        pong = await client.ping()
        assert pong["mode"] == "batch"
        await client.close()
        started = time.monotonic()
        process.signal(signal.SIGTERM)
        assert await process.wait() == 128 + signal.SIGTERM
        assert time.monotonic() - started < 2.0
    finally:
        await process.stop()


async def test_batch_command_that_handles_sigterm_sets_its_own_exit_code() -> None:
    script = "trap 'exit 42' TERM; echo ready; while true; do sleep 0.05; done"
    process = await RunnerProcess.start("--batch", "--", "sh", "-c", script, capture_output=True)
    try:
        assert process.process.stdout is not None
        assert await asyncio.wait_for(process.process.stdout.readline(), 10) == b"ready\n"
        process.signal(signal.SIGTERM)
        assert await process.wait() == 42
    finally:
        await process.stop()
