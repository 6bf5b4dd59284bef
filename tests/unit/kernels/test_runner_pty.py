"""The runner's "pty" op: shells on pseudo-terminals, framed, re-attachable, back-pressured."""
from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

import pytest

from corral.agent.runner_client import PtyConnection, RunnerRefused, RunnerUnavailable, open_pty
from corral.kernels import contract

from .runner_process import RawConnection, RunnerProcess

SHELL = ["/bin/sh"]  # no rc files: quick and predictable (the default-shell test uses $SHELL)


async def read_until(terminal: PtyConnection, pattern: bytes, timeout: float = 10.0) -> bytes:
    """DATA received until ``pattern`` (a regex) matches it."""
    output = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, output):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{pattern!r} not seen in {output[-2000:]!r}")
        frame_type, payload = await asyncio.wait_for(terminal.read_frame(), remaining)
        if frame_type == contract.PTY_FRAME_DATA:
            output += payload
    return output


async def read_exit(terminal: PtyConnection, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        frame_type, payload = await asyncio.wait_for(terminal.read_frame(), deadline - time.monotonic())
        if frame_type == contract.PTY_FRAME_EXIT:
            return json.loads(payload)


async def shell_pid(terminal: PtyConnection) -> int:
    await terminal.send_input(b"echo pid=$$=\n")
    return int(re.search(rb"pid=(\d+)=", await read_until(terminal, rb"pid=\d+=")).group(1))


def is_gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # a zombie would mean nobody reaped it: not gone


def rss_kib(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1))


async def test_echo_hello_in_the_default_shell(runner: RunnerProcess) -> None:
    terminal = await open_pty(runner.socket_path, 24, 80)
    assert re.fullmatch(r"[0-9a-f]{16}", terminal.pty_id)
    await terminal.send_input(b"echo hel''lo; echo $TERM\n")  # the typed line itself never shows "hello"
    assert re.search(rb"hello\r\nxterm-256color\r\n", await read_until(terminal, rb"xterm-256color\r\n"))
    await terminal.close()


async def test_stty_size_follows_open_and_resize(runner: RunnerProcess) -> None:
    terminal = await open_pty(runner.socket_path, 33, 101, command=SHELL)
    await terminal.send_input(b"stty size\n")
    await read_until(terminal, rb"33 101\r\n")  # (the prompt may come after the typed line's echo)
    await terminal.resize(50, 132)
    await terminal.send_input(b"stty size\n")
    await read_until(terminal, rb"50 132\r\n")
    await terminal.close()


async def test_reattach_finds_the_same_shell_and_replays_its_output(runner: RunnerProcess) -> None:
    terminal = await open_pty(runner.socket_path, 24, 80, command=SHELL)
    await terminal.send_input(b"export X=$((6*7))abc; echo before-$((1+1))\n")
    await read_until(terminal, rb"before-2")
    pty_id = terminal.pty_id
    await terminal.close()

    again = await open_pty(runner.socket_path, 24, 80, attach=pty_id)
    assert again.pty_id == pty_id
    assert b"before-2" in await read_until(again, rb"before-2")  # the scrollback comes first
    await again.send_input(b"echo $X\n")
    await read_until(again, rb"42abc")
    await again.close()


async def test_a_new_attach_takes_over(runner: RunnerProcess) -> None:
    first = await open_pty(runner.socket_path, 24, 80, command=SHELL)
    second = await open_pty(runner.socket_path, 24, 80, attach=first.pty_id)
    with pytest.raises(RunnerUnavailable):
        while True:
            await asyncio.wait_for(first.read_frame(), 5)
    await second.send_input(b"echo ta''ken\n")
    await read_until(second, rb"taken")
    await first.close()
    await second.close()


async def test_after_the_grace_period_the_shell_is_gone() -> None:
    runner = await RunnerProcess.start(env={contract.PTY_GRACE_ENV: "0.3"})
    try:
        await runner.wait_for_socket()
        terminal = await open_pty(runner.socket_path, 24, 80, command=SHELL)
        pid = await shell_pid(terminal)
        await terminal.close()
        await asyncio.sleep(1.0)
        with pytest.raises(RunnerRefused, match="no live pty"):
            await open_pty(runner.socket_path, 24, 80, attach=terminal.pty_id)
        deadline = time.monotonic() + 5
        while not is_gone(pid):
            assert time.monotonic() < deadline, f"shell {pid} still there"
            await asyncio.sleep(0.02)
    finally:
        await runner.stop()


async def test_exit_code_comes_in_an_exit_frame(runner: RunnerProcess) -> None:
    terminal = await open_pty(runner.socket_path, 24, 80, command=SHELL)
    pid = await shell_pid(terminal)
    await terminal.send_input(b"echo bye; exit 3\n")
    assert await read_exit(terminal) == {"code": 3}
    with pytest.raises(RunnerUnavailable):  # then the runner closes
        await asyncio.wait_for(terminal.read_frame(), 5)
    deadline = time.monotonic() + 5
    while not is_gone(pid):  # reaped, no zombie
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    with pytest.raises(RunnerRefused, match="no live pty"):
        await open_pty(runner.socket_path, 24, 80, attach=terminal.pty_id)
    await terminal.close()


async def test_the_last_output_comes_before_exit(runner: RunnerProcess) -> None:
    terminal = await open_pty(runner.socket_path, 24, 80, command=["sh", "-c", "seq 1 20000; exit 5"])
    output = b""
    while True:
        frame_type, payload = await asyncio.wait_for(terminal.read_frame(), 10)
        if frame_type == contract.PTY_FRAME_EXIT:
            break
        output += payload
    assert json.loads(payload) == {"code": 5}
    assert output.endswith(b"19999\r\n20000\r\n")
    await terminal.close()


async def test_a_slow_client_does_not_grow_the_runner(runner: RunnerProcess) -> None:
    terminal = await open_pty(runner.socket_path, 24, 80, command=SHELL)
    await terminal.send_input(b"stty -echo\n")
    await read_until(terminal, rb"stty -echo\r\n")
    await asyncio.sleep(0.2)
    before = rss_kib(runner.process.pid)
    await terminal.send_input(b"yes | head -c 50000000; echo do''ne\n")
    peak = before
    for _ in range(20):  # 2 s of not reading while the shell tries to print 50 MB
        await asyncio.sleep(0.1)
        peak = max(peak, rss_kib(runner.process.pid))
    assert peak - before < 50 * 1024, f"runner RSS grew {peak - before} KiB"
    # The shell was blocked meanwhile (a pty moves ~6 MB/s, so unblocked it would be far ahead):
    # what is buffered on the way is a few MB at most. Ctrl-C ends it.
    await terminal.send_input(b"\x03")
    await terminal.send_input(b"echo af''ter\n")
    received = 0
    tail = b""
    while not re.search(rb"after\r\n", tail):
        frame_type, payload = await asyncio.wait_for(terminal.read_frame(), 10)
        if frame_type == contract.PTY_FRAME_DATA:
            received += len(payload)
            tail = (tail + payload)[-64:]
    assert 0 < received < 4 << 20
    await terminal.close()


async def test_ping_is_answered_with_a_pong(runner: RunnerProcess) -> None:
    terminal = await open_pty(runner.socket_path, 24, 80, command=SHELL)
    await terminal.ping(b"are you there")
    while (frame := await asyncio.wait_for(terminal.read_frame(), 5))[0] != contract.PTY_FRAME_PONG:
        pass
    assert frame == (contract.PTY_FRAME_PONG, b"are you there")
    await terminal.close()


async def test_attach_to_an_unknown_pty_is_refused(runner: RunnerProcess) -> None:
    with pytest.raises(RunnerRefused, match="no live pty 'nope'"):
        await open_pty(runner.socket_path, 24, 80, attach="nope")


async def test_a_command_that_cannot_start_is_refused(runner: RunnerProcess) -> None:
    with pytest.raises(RunnerRefused, match="cannot start /nonexistent/shell"):
        await open_pty(runner.socket_path, 24, 80, command=["/nonexistent/shell"])


@pytest.mark.parametrize("request_fields", [
    {"rows": 0, "cols": 80}, {"rows": 24, "cols": "80"}, {"rows": 24, "cols": 80, "attach": 5},
    {"rows": 24, "cols": 80, "command": []}, {"rows": 24, "cols": 80, "command": "sh"},
])
async def test_bad_pty_requests_are_errors(runner: RunnerProcess, request_fields: dict) -> None:
    connection = await RawConnection.open(runner.socket_path)
    await connection.send({"op": "pty", **request_fields})
    answer = await connection.receive()
    assert answer["ok"] is False and answer["error"]
    await connection.close()


async def test_an_oversized_frame_ends_the_connection_with_an_error(runner: RunnerProcess) -> None:
    terminal = await open_pty(runner.socket_path, 24, 80, command=SHELL)
    terminal.writer.write(contract.PTY_FRAME_HEADER.pack(contract.PTY_FRAME_DATA, contract.PTY_MAX_FRAME_BYTES + 1))
    await terminal.writer.drain()
    frames = []
    with pytest.raises(RunnerUnavailable):
        while True:
            frames.append(await asyncio.wait_for(terminal.read_frame(), 5))
    assert frames[-1][0] == contract.PTY_FRAME_ERROR
    assert "over" in json.loads(frames[-1][1])["error"]
    await terminal.close()


async def test_runner_shutdown_hangs_up_its_shells(runner: RunnerProcess) -> None:
    terminal = await open_pty(runner.socket_path, 24, 80, command=SHELL)
    pid = await shell_pid(terminal)
    runner.signal(__import__("signal").SIGTERM)
    assert await runner.wait() == 0
    deadline = time.monotonic() + 5
    while not (is_gone(pid) or _parent_is_not(pid, runner.process.pid)):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await terminal.close()


def _parent_is_not(pid: int, parent: int) -> bool:
    """On the host an orphaned shell is reaped by init, not the (gone) runner."""
    try:
        return int(re.search(r"PPid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) != parent
    except FileNotFoundError:
        return True


def test_frame_helpers_round_trip() -> None:
    frame = contract.encode_frame(contract.PTY_FRAME_PING, b"abc")
    assert frame == b"\x03\x00\x00\x00\x03abc"
    assert contract.decode_frame_header(frame[:5]) == (contract.PTY_FRAME_PING, 3)
    big = os.urandom(contract.PTY_MAX_FRAME_BYTES + 10)
    frames = contract.encode_data_frames(big)
    assert len(frames) == len(big) + 2 * contract.PTY_FRAME_HEADER.size
    with pytest.raises(contract.FrameError):
        contract.encode_frame(contract.PTY_FRAME_DATA, big)
