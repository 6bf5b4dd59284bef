"""The runner's services: lazy and boot starts, readiness, failure with a log tail, the per-service socket.

The runner runs on the host here, so the test's loopback stands for the container's."""
from __future__ import annotations

import asyncio
import json
import socket
import sys

from corral.kernels import services
from corral.kernels.services import ServiceDefinition, definitions_to_env

from .runner_process import RawConnection, RunnerProcess


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_server(name: str, port: int, start: str = "lazy") -> ServiceDefinition:
    return ServiceDefinition(
        name=name, protocol="http", port=port, start=start,
        command=[sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "{port}"],
        ready_path="/", ready_timeout_s=20,
    )


async def start_runner(*definitions: ServiceDefinition) -> RunnerProcess:
    runner = await RunnerProcess.start(env={services.SERVICES_ENV: definitions_to_env(list(definitions)),
                                            "CORRAL_SESSION_ID": "s-1"})
    await runner.wait_for_socket()
    return runner


async def request(runner: RunnerProcess, message: dict, timeout: float = 30.0) -> dict:
    connection = await RawConnection.open(runner.socket_path)
    try:
        await connection.send(message)
        return await connection.receive(timeout)
    finally:
        await connection.close()


async def test_a_lazy_service_starts_on_first_use_and_its_socket_reaches_it() -> None:
    port = free_port()
    runner = await start_runner(http_server("web", port))
    try:
        listed = await request(runner, {"op": "services"})
        assert [(s["name"], s["state"]) for s in listed["services"]] == [("web", "stopped")]
        answer = await request(runner, {"op": "service_start", "name": "web", "wait_s": 20})
        assert answer["service"]["state"] == "ready", answer
        assert answer["service"]["pid"] and answer["service"]["ready_at"]
        reader, writer = await asyncio.open_unix_connection(str(runner.directory / services.socket_name("web")))
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await writer.drain()
        body = await asyncio.wait_for(reader.read(), 10)
        assert body.startswith(b"HTTP/1.0 200")
        writer.close()
    finally:
        await runner.stop()


async def test_a_connection_to_the_socket_starts_a_lazy_service() -> None:
    runner = await start_runner(http_server("web", free_port()))
    try:
        reader, writer = await asyncio.open_unix_connection(str(runner.directory / services.socket_name("web")))
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await writer.drain()
        assert (await asyncio.wait_for(reader.read(), 20)).startswith(b"HTTP/1.0 200")
        writer.close()
    finally:
        await runner.stop()


async def test_a_boot_service_that_exits_is_failed_with_its_log_tail_and_restarts_after_a_backoff() -> None:
    crash = ServiceDefinition(
        name="crash", protocol="tcp", port=free_port(), start="boot",
        command=[sys.executable, "-c", "import sys; print('no config file here'); sys.exit(3)"],
    )
    runner = await start_runner(crash)
    try:
        for _ in range(200):
            info = (await request(runner, {"op": "services"}))["services"][0]
            if info["state"] == "failed":
                break
            await asyncio.sleep(0.05)
        assert info["state"] == "failed" and info["exit_code"] == 3
        assert "no config file here" in info["log_tail"] and "exited with code 3" in info["error"]
        again = await request(runner, {"op": "service_start", "name": "crash", "wait_s": 5})
        assert again["service"]["state"] == "failed"  # within the backoff: not started again
        assert again["service"]["log_tail"].count("--- starting crash") == 1
    finally:
        await runner.stop()


async def test_a_service_that_never_listens_fails_after_its_ready_timeout() -> None:
    idle = ServiceDefinition(
        name="idle", protocol="tcp", port=free_port(), ready_timeout_s=0.5,
        command=[sys.executable, "-c", "import time; time.sleep(60)"],
    )
    runner = await start_runner(idle)
    try:
        answer = await request(runner, {"op": "service_start", "name": "idle", "wait_s": 10})
        assert answer["service"]["state"] == "failed"
        assert "not ready after 0.5 s" in answer["service"]["error"]
    finally:
        await runner.stop()


async def test_stop_and_unknown_names() -> None:
    port = free_port()
    runner = await start_runner(http_server("web", port, start="boot"))
    try:
        ready = await request(runner, {"op": "service_start", "name": "web", "wait_s": 20})
        assert ready["service"]["state"] == "ready"
        stopped = await request(runner, {"op": "service_stop", "name": "web"})
        assert stopped["service"]["state"] == "stopped"
        unknown = await request(runner, {"op": "service_start", "name": "nope"})
        assert unknown["op"] == "error" and "this session has: web" in unknown["error"]
    finally:
        await runner.stop()


async def test_bad_service_definitions_are_ignored_with_a_message() -> None:
    runner = await RunnerProcess.start(env={services.SERVICES_ENV: "{not json"}, capture_output=True)
    await runner.wait_for_socket()
    try:
        assert (await request(runner, {"op": "services"}))["services"] == []
    finally:
        await runner.stop()


def test_sshd_config_forwards_the_session_environment_quoted() -> None:
    from corral.kernels.runner_services import sshd_config

    text = sshd_config(2200, "/run/corral/ssh", "/run/corral/sshd", "/usr/lib/openssh/sftp-server", {
        "CUDA_VISIBLE_DEVICES": "0,1", "WITH_SPACE": "a b", "QUOTED": 'a"b', "HOME": "/x", "SSH_AUTH_SOCK": "/y",
    })
    assert "ListenAddress 127.0.0.1:2200" in text
    assert "PasswordAuthentication no" in text and "AllowTcpForwarding yes" in text
    set_env = next(line for line in text.splitlines() if line.startswith("SetEnv "))
    assert set_env == 'SetEnv "CUDA_VISIBLE_DEVICES=0,1" "WITH_SPACE=a b"'
    assert json.dumps(text)  # plain text
