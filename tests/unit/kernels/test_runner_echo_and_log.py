"""The runner's echo rule for a cell's trailing expression, and its copy of output to the container log."""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from corral.agent.runner_client import RunnerClient

from .runner_process import RUNNER_PYTHON, RUNNER_SCRIPT, RunnerProcess


@pytest.fixture
async def client(runner: RunnerProcess):  # type: ignore[no-untyped-def]
    connection = await RunnerClient.connect(runner.socket_path)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("code", "stdout"),
    [
        ("6 * 7", "42\n"),  # the prompt's convention: a trailing expression's repr
        ("'a'", "'a'\n"),
        ("None", ""),  # a None value is not echoed
        ("print('hi')", "hi\n"),  # print's None result is not echoed
        ("x = [1, 2]\n[print(i) for i in x]", "1\n2\n"),  # a comprehension for its side effects: no [None, None]
        ("{print(i) for i in (1,)}", "1\n"),
        ("[None, None]", "[None, None]\n"),  # a literal is what the user asked to see
        ("[i for i in range(3)]", "[0, 1, 2]\n"),
        ("[print(i) for i in []]", "[]\n"),
        ("[None if i else 1 for i in range(2)]", "[1, None]\n"),
        ("1\n2", "2\n"),  # only the last statement echoes
        ("y = 5", ""),
    ],
)
async def test_trailing_expression_echo_rule(client: RunnerClient, code: str, stdout: str) -> None:
    result = await client.execute(code)
    assert result.status == "ok", result.error
    assert result.stdout == stdout


async def test_echo_sets_underscore_like_the_prompt(client: RunnerClient) -> None:
    await client.execute("21 * 2")
    assert (await client.execute("print(_)")).stdout == "42\n"


async def test_an_error_in_the_trailing_expression_is_reported(client: RunnerClient) -> None:
    result = await client.execute("x = 1\n1 / 0")
    assert result.status == "error"
    assert "ZeroDivisionError" in result.stderr + (result.error or "")
    assert 'File "<cell>", line 2' in (result.error or "") + result.stderr


async def test_executed_output_is_copied_to_the_runners_own_stdout_and_stderr() -> None:
    process = await RunnerProcess.start(capture_output=True)
    try:
        await process.wait_for_socket()
        async with await RunnerClient.connect(process.socket_path) as client:
            result = await client.execute(
                "import sys, subprocess\nprint('to-out')\nprint('to-err', file=sys.stderr)\n"
                "_ = subprocess.run(['sh', '-c', 'echo from-child'])"
            )
            assert result.stdout == "to-out\nfrom-child\n" and result.stderr == "to-err\n"
            await client.execute("import threading; threading.Timer(0.05, print, ['idle-output']).start()")
            await asyncio.sleep(0.5)
            await client.shutdown()
        stdout, stderr = await asyncio.wait_for(process.process.communicate(), 10)
        assert stdout.decode() == "to-out\nfrom-child\nidle-output\n"
        assert stderr.decode() == "to-err\n"
    finally:
        await process.stop()


async def test_a_log_nobody_reads_never_holds_up_execution(tmp_path: Path) -> None:
    # The runner's stdout is a pipe nobody reads (64 KiB fill it): the copy waits or drops, the execute does not.
    read_end, write_end = os.pipe()
    directory = Path(tempfile.mkdtemp(prefix="crn-", dir="/tmp"))
    socket_path = directory / "runner.sock"
    process = await asyncio.create_subprocess_exec(
        RUNNER_PYTHON, str(RUNNER_SCRIPT), env={**os.environ, "CORRAL_RUNNER_SOCKET": str(socket_path)},
        stdin=asyncio.subprocess.DEVNULL, stdout=write_end,
    )
    os.close(write_end)
    try:
        while not socket_path.exists():
            await asyncio.sleep(0.01)
        async with await RunnerClient.connect(socket_path) as client:
            result = await asyncio.wait_for(client.execute("print('x' * (16 << 20))"), 30)
            assert result.status == "ok" and len(result.stdout) == (16 << 20) + 1
            assert (await asyncio.wait_for(client.execute("print('still serving')"), 10)).stdout == "still serving\n"
    finally:
        process.kill()
        await process.wait()
        os.close(read_end)
        shutil.rmtree(directory, ignore_errors=True)
