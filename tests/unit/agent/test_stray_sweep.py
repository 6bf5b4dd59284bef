from pathlib import Path

from corral.agent.backend.base import ExistingKernel
from corral.agent.kernels import KernelManager
from corral.common.node_resources import Allocation, NodeCapacity
from corral.agent.kernel_spec import KernelRecord


class FakeBackend:
    has_runner = False

    def __init__(self, found: list[ExistingKernel]) -> None:
        self.found = found
        self.stopped: list[str] = []

    async def existing_kernels(self) -> list[ExistingKernel]:
        return [k for k in self.found if k.container_id not in self.stopped]

    async def stop_kernel(self, container_id: str, grace_s: int = 3) -> tuple[int | None, str]:
        self.stopped.append(container_id)
        return 0, ""


def _existing(kernel_id: str, container_id: str, tmp: Path) -> ExistingKernel:
    return ExistingKernel(kernel_id, "s", container_id, tmp / kernel_id, {"cpu": "1", "mem": 1}, True, None)


async def test_strays_are_removed_on_the_second_sweep_only(tmp_path: Path) -> None:
    backend = FakeBackend([_existing("known", "c-known", tmp_path), _existing("stray", "c-stray", tmp_path)])
    manager = KernelManager(tmp_path, backend, NodeCapacity((0, 1), 1 << 30), link=None)  # type: ignore[arg-type]
    manager.records["known"] = KernelRecord("known", "s", tmp_path / "known", Allocation.from_json({"cpu": "1"}),
                                            "running", "c-known")
    assert await manager.sweep_strays() == []
    assert await manager.sweep_strays() == ["c-stray"]
    assert backend.stopped == ["c-stray"]


async def test_a_container_that_gets_its_kernel_is_not_a_stray(tmp_path: Path) -> None:
    backend = FakeBackend([_existing("late", "c-late", tmp_path)])
    manager = KernelManager(tmp_path, backend, NodeCapacity((0,), 1 << 30), link=None)  # type: ignore[arg-type]
    assert await manager.sweep_strays() == []
    manager.records["late"] = KernelRecord("late", "s", tmp_path / "late", Allocation.from_json({}), "preparing")
    assert await manager.sweep_strays() == []
    assert backend.stopped == []


async def test_a_container_of_an_ended_kernel_goes_on_the_first_sweep(tmp_path: Path) -> None:
    backend = FakeBackend([_existing("ended", "c-ended", tmp_path), _existing("new", "c-new", tmp_path)])
    manager = KernelManager(tmp_path, backend, NodeCapacity((0,), 1 << 30), link=None)  # type: ignore[arg-type]
    manager.tombstones.bury("ended", "was already destroyed")
    assert await manager.sweep_strays() == ["c-ended"]
    assert backend.stopped == ["c-ended"]


async def test_a_kernel_that_ends_while_the_sweep_lists_is_left_to_its_own_teardown(tmp_path: Path) -> None:
    class EndsDuringListing(FakeBackend):
        async def existing_kernels(self) -> list[ExistingKernel]:
            found = await super().existing_kernels()
            manager.records.pop("ending", None)  # its teardown removed the container just after the listing
            manager.tombstones.bury("ending", "was already destroyed")
            return found

    backend = EndsDuringListing([_existing("ending", "c-ending", tmp_path)])
    manager = KernelManager(tmp_path, backend, NodeCapacity((0,), 1 << 30), link=None)  # type: ignore[arg-type]
    manager.records["ending"] = KernelRecord("ending", "s", tmp_path / "ending", Allocation.from_json({}),
                                             "terminating", "c-ending")
    assert await manager.sweep_strays() == []
    assert backend.stopped == []
