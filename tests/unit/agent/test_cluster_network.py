"""The per-session bridge network of single-node cluster sessions: made once, reused, removed with the
session's last kernel on the agent (and swept after a restart), quietly when Docker says no."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiodocker.exceptions import DockerError

from corral.agent.backend.base import ExistingKernel
from corral.agent.cluster_network import LABEL_NETWORK_SESSION, SessionNetworks
from corral.agent.kernel_spec import KernelRecord
from corral.agent.kernels import KernelManager
from corral.common.cluster import session_network_name
from corral.common.node_resources import Allocation, NodeCapacity


class FakeNetwork:
    def __init__(self, engine: "FakeNetworks", name: str) -> None:
        self.engine, self.name = engine, name

    async def delete(self) -> bool:
        if self.engine.attached.get(self.name):
            raise DockerError(self.engine.in_use_status, "error while removing network: has active endpoints")
        if self.engine.networks.pop(self.name, None) is None:
            raise DockerError(404, f"network {self.name} not found")
        return True


class FakeNetworks:
    """The engine's networks API; ``create`` yields first, so two calls can race past ``get``."""

    def __init__(self) -> None:
        self.networks: dict[str, dict[str, Any]] = {}
        self.attached: dict[str, int] = {}
        self.created = 0
        self.in_use_status = 403

    async def get(self, name: str) -> FakeNetwork:
        await asyncio.sleep(0)
        if name not in self.networks:
            raise DockerError(404, f"network {name} not found")
        return FakeNetwork(self, name)

    async def create(self, config: dict[str, Any]) -> FakeNetwork:
        await asyncio.sleep(0.01)
        if config["Name"] in self.networks and config.get("CheckDuplicate"):
            raise DockerError(409, f"network with name {config['Name']} already exists")
        self.networks[config["Name"]] = config
        self.created += 1
        return FakeNetwork(self, config["Name"])

    async def list(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        wanted = dict(label.partition("=")[::2] for label in filters["label"])
        return [
            {"Name": name, "Labels": config["Labels"]} for name, config in self.networks.items()
            if all(key in config["Labels"] and (not value or config["Labels"][key] == value)
                   for key, value in wanted.items())
        ]


class FakeDocker:
    def __init__(self) -> None:
        self.networks = FakeNetworks()


def _networks() -> tuple[SessionNetworks, FakeNetworks]:
    docker = FakeDocker()
    return SessionNetworks(lambda: docker, "agent-1"), docker.networks  # type: ignore[arg-type,return-value]


async def test_concurrent_kernels_of_a_session_share_one_network() -> None:
    networks, engine = _networks()
    names = await asyncio.gather(networks.ensure("s1"), networks.ensure("s1"), networks.ensure("s1"))
    assert names == [session_network_name("s1")] * 3 and engine.created == 1
    config = engine.networks[session_network_name("s1")]
    assert config["Driver"] == "bridge"
    assert config["Labels"] == {"ai.corral.managed": "1", LABEL_NETWORK_SESSION: "s1", "ai.corral.agent-id": "agent-1"}


async def test_a_network_made_meanwhile_elsewhere_is_reused() -> None:
    first, engine = _networks()
    second = SessionNetworks(lambda: first._docker(), "agent-1")  # another process: no shared lock
    await asyncio.gather(first.ensure("s1"), second.ensure("s1"))  # one of them gets Docker's 409
    assert engine.created == 1 and list(engine.networks) == [session_network_name("s1")]


async def test_release_removes_it_quietly_and_leaves_one_in_use_for_later() -> None:
    networks, engine = _networks()
    await networks.ensure("s1")
    engine.attached[session_network_name("s1")] = 1
    for status in (403, 409):
        engine.in_use_status = status
        await networks.release("s1")  # still in use: no error
        assert session_network_name("s1") in engine.networks and "s1" in networks.known
    engine.attached.clear()
    await networks.release("s1")
    assert engine.networks == {} and networks.known == set()
    await networks.release("s1")  # not ours any more: nothing to do
    networks.known.add("s1")
    await networks.release("s1")  # already gone (404): fine
    assert networks.known == set()


async def test_sweep_removes_the_networks_of_sessions_without_kernels_here() -> None:
    networks, engine = _networks()
    for session in ("live", "ended", "busy"):
        await networks.ensure(session)
    await SessionNetworks(networks._docker, "agent-2").ensure("other-agents")
    engine.attached[session_network_name("busy")] = 1
    restarted = SessionNetworks(networks._docker, "agent-1")
    assert await restarted.sweep(lambda session: session == "live") == ["ended"]
    assert sorted(engine.networks) == sorted(session_network_name(s) for s in ("live", "busy", "other-agents"))
    assert restarted.known == {"live", "busy"}  # adopted: released with their last kernel


async def test_a_kernel_being_started_keeps_its_network_from_a_removal() -> None:
    networks, engine = _networks()
    order: list[str] = []

    async def start_kernel() -> None:
        async with networks.joined("s1"):
            order.append("creating")
            await asyncio.sleep(0.02)
            engine.attached[session_network_name("s1")] = 1  # the container started on it
            order.append("started")

    starting = asyncio.create_task(start_kernel())
    await asyncio.sleep(0.005)
    await networks.release("s1")  # waits for the start, then finds it in use
    await starting
    assert order == ["creating", "started"] and session_network_name("s1") in engine.networks


class NetworkingBackend:
    """A backend with session networks: records what the manager asks of them."""

    has_runner = False

    def __init__(self, found: list[ExistingKernel] | None = None) -> None:
        self.found = found or []
        self.released: list[str] = []
        self.swept: list[list[str]] = []

    async def stop_kernel(self, container_id: str, grace_s: int = 3) -> tuple[int | None, str]:
        return 0, ""

    async def existing_kernels(self) -> list[ExistingKernel]:
        return self.found

    async def release_session_network(self, session_id: str) -> None:
        self.released.append(session_id)

    async def sweep_session_networks(self, wanted: Any) -> list[str]:
        self.swept.append([session for session in ("s1", "s2") if not wanted(session)])
        return self.swept[-1]


class NoLink:
    def send_event(self, kind: str, kernel_id: str, **fields: Any) -> None:
        pass


def _record(kernel_id: str, session_id: str, tmp_path: Path) -> KernelRecord:
    return KernelRecord(kernel_id, session_id, tmp_path / kernel_id, Allocation.from_json({"cpu": "1"}),
                        "running", f"c-{kernel_id}")


async def test_the_network_goes_with_the_sessions_last_kernel_on_the_agent(tmp_path: Path) -> None:
    backend = NetworkingBackend()
    manager = KernelManager(tmp_path, backend, NodeCapacity((0, 1, 2), 1 << 30), NoLink())  # type: ignore[arg-type]
    for kernel_id in ("main1", "sub1"):
        manager.records[kernel_id] = _record(kernel_id, "s1", tmp_path)
    await manager.destroy("main1", "test")
    assert backend.released == []  # sub1 still runs here
    await manager.on_container_exit("sub1", 0)
    assert backend.released == ["s1"]


async def test_a_restart_and_every_sweep_remove_networks_of_sessions_gone_from_the_agent(tmp_path: Path) -> None:
    running = ExistingKernel("k1", "s1", "c-k1", tmp_path / "k1", {"cpu": "1"}, True, None)
    exited = ExistingKernel("k2", "s2", "c-k2", tmp_path / "k2", {"cpu": "1"}, False, 0)
    backend = NetworkingBackend([running, exited])
    manager = KernelManager(tmp_path, backend, NodeCapacity((0, 1), 1 << 30), NoLink())  # type: ignore[arg-type]
    await manager.reattach()
    assert backend.swept == [["s2"]]  # s1 still has its kernel here
    backend.found = [running]
    await manager.sweep_strays()
    assert backend.swept[-1] == ["s2"]
