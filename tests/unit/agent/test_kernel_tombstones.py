"""A create that arrives after its kernel's destroy must not start a container."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from corral.agent.backend.dummy import DummyBackend
from corral.agent.kernel_spec import KernelSpec
from corral.agent.kernel_tombstones import KernelDestroyed, KernelTombstones
from corral.agent.kernels import KernelManager
from corral.agent.rpc import create_rpc_app
from corral.common.cluster_secret import bearer_headers
from corral.common.errors import PROBLEM_BASE, NotFound
from corral.common.node_resources import NodeCapacity

SECRET = "s3cret"


class RecordingLink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send_event(self, kind: str, kernel_id: str, **fields: Any) -> None:
        self.events.append({"kind": kind, "kernel_id": kernel_id, **fields})


class CountingBackend(DummyBackend):
    def __init__(self) -> None:
        super().__init__("agent-1")
        self.started: list[str] = []

    async def start_kernel(self, spec: KernelSpec, kernel_dir: Path, progress: Any = None) -> str:
        self.started.append(spec.kernel_id)
        return await super().start_kernel(spec, kernel_dir, progress)


def spec(kernel_id: str) -> KernelSpec:
    return KernelSpec(kernel_id=kernel_id, session_id="s-1", image="corral/python:latest",
                      allocation={"cpu": "1", "mem": 1 << 20})


@pytest.fixture
def backend() -> CountingBackend:
    return CountingBackend()


@pytest.fixture
def manager(tmp_path: Path, backend: CountingBackend) -> KernelManager:
    return KernelManager(tmp_path, backend, NodeCapacity((0, 1), 1 << 30), RecordingLink())  # type: ignore[arg-type]


async def settled(manager: KernelManager) -> None:
    await asyncio.gather(*manager._starting.values(), return_exceptions=True)


async def test_destroy_before_create_answers_404_and_refuses_the_late_create(
    manager: KernelManager, backend: CountingBackend
) -> None:
    free_before = manager.state.free_slots()
    with pytest.raises(NotFound):
        await manager.destroy("k-late", "the session was destroyed")
    with pytest.raises(KernelDestroyed) as refused:
        await manager.create(spec("k-late"))
    assert refused.value.detail == "kernel k-late was destroyed before it was created"
    assert refused.value.status == 410
    assert refused.value.type_uri == PROBLEM_BASE + "kernel-destroyed"
    assert backend.started == []
    assert manager.records == {}
    assert manager.state.free_slots() == free_before


async def test_a_repeated_create_of_a_live_kernel_returns_the_same_kernel(
    manager: KernelManager, backend: CountingBackend
) -> None:
    first = await manager.create(spec("k-1"))
    await settled(manager)
    again = await manager.create(spec("k-1"))
    assert again is first and again.status == "running"
    assert backend.started == ["k-1"]


async def test_a_create_after_destroy_is_refused(manager: KernelManager, backend: CountingBackend) -> None:
    await manager.create(spec("k-1"))
    await settled(manager)
    await manager.destroy("k-1", "done")
    with pytest.raises(KernelDestroyed, match="kernel k-1 was already destroyed"):
        await manager.create(spec("k-1"))
    assert backend.started == ["k-1"]


async def test_a_create_after_the_container_exited_is_refused(manager: KernelManager) -> None:
    await manager.create(spec("k-1"))
    await settled(manager)
    await manager.on_container_exit("k-1", 0)
    with pytest.raises(KernelDestroyed, match="already ended"):
        await manager.create(spec("k-1"))


async def test_destroy_during_start_leaves_a_tombstone(manager: KernelManager) -> None:
    await manager.create(spec("k-1"))  # its start task has not run yet
    await manager.destroy("k-1", "destroyed while preparing")
    assert "k-1" in manager.tombstones
    with pytest.raises(KernelDestroyed):
        await manager.create(spec("k-1"))


async def test_tombstones_are_bounded_by_count_and_age() -> None:
    now = [0.0]
    tombstones = KernelTombstones(max_entries=3, ttl_s=60, clock=lambda: now[0])
    for kernel_id in ("a", "b", "c", "d"):
        tombstones.bury(kernel_id, "was destroyed")
    assert "a" not in tombstones and len(tombstones) == 3
    now[0] = 30
    tombstones.bury("e", "was destroyed")
    assert [k for k in "bcde" if k in tombstones] == ["c", "d", "e"]
    now[0] = 61
    assert [k for k in "cde" if k in tombstones] == ["e"]
    now[0] = 91
    assert len(tombstones) == 0


def test_the_first_reason_stays() -> None:
    tombstones = KernelTombstones()
    tombstones.bury("k", "already ended (its container exited)")
    tombstones.bury("k", "was destroyed before it was created")
    assert tombstones.how_it_ended("k") == "already ended (its container exited)"


async def test_over_rpc_delete_then_post_is_404_then_410(manager: KernelManager, backend: CountingBackend) -> None:
    async with TestClient(TestServer(create_rpc_app(manager, SECRET))) as client:
        headers = bearer_headers(SECRET)
        deleted = await client.delete("/rpc/v1/kernels/k-late", headers=headers)
        assert deleted.status == 404
        created = await client.post("/rpc/v1/kernels", json=spec("k-late").model_dump(), headers=headers)
        assert created.status == 410
        problem = await created.json(content_type=None)
        assert problem["type"] == PROBLEM_BASE + "kernel-destroyed"
        assert problem["detail"] == "kernel k-late was destroyed before it was created"
        assert problem["kernel_id"] == "k-late"
    assert backend.started == []
