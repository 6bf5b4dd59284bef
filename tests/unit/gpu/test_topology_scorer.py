"""The scheduler's topology scorer, the GPU detail in reservations, and the agents view's GPU part."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from corral.common.allocator import NodeState
from corral.common.errors import ConfigError
from corral.common.node_resources import NodeCapacity
from corral.common.slots import ResourceSlot
from corral.manager.config import SchedulerConfig
from corral.manager.scheduler.filter import Candidate
from corral.manager.scheduler.node_view import NodeView
from corral.manager.scheduler.registry import build_stages
from corral.manager.scheduler.reserve import allocation_record
from corral.manager.scheduler.scorers import ScoringPlan, parse_scorers
from corral.manager.session_views import gpu_view

from .topologies import load

D = Decimal
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def node(agent_id: str, topology_file: str | None, order: int, cores: int = 64) -> NodeView:
    topology = load(topology_file).to_json() if topology_file else None
    capacity = NodeCapacity(cpu_cores=tuple(range(cores)), mem=2**40, gpu_topology=topology)
    return NodeView(agent_id, f"http://{agent_id}", "default", T0 + timedelta(seconds=order), NodeState(capacity))


def feasible(nodes: list[NodeView], request: ResourceSlot) -> list[Candidate]:
    """The nodes that can take ``request`` now, each with the allocation it would give (GPUs, no cores yet)."""
    return [Candidate(n, a) for n in nodes if (a := n.state.try_allocate(request, with_cores=False)) is not None]


def ranked(nodes: list[NodeView], **slots: object) -> list[str]:
    request = ResourceSlot({"cpu": 1, "mem": 2**20, **{k.replace("_", "."): v for k, v in slots.items()}})
    candidates = feasible(nodes, request)
    return [c.node.agent_id for c in ScoringPlan(parse_scorers([{"name": "topology"}])).rank(candidates)]


def test_topology_is_the_default_scorer_and_unknown_names_are_refused() -> None:
    assert [s.name for s in parse_scorers(None)] == ["topology"]
    build_stages(SchedulerConfig(score="first-fit"))
    with pytest.raises(ConfigError, match="unknown scheduler score"):
        build_stages(SchedulerConfig(score="best"))


def test_four_gpus_go_to_the_node_with_a_better_connected_set() -> None:
    pcie = node("pcie", "pcie-8gpu-dual-socket.toml", order=0)
    nvswitch = node("nvswitch", "dgx-a100.toml", order=1)
    assert ranked([pcie, nvswitch], cuda_device=4) == ["nvswitch", "pcie"]


def test_the_node_whose_free_gpus_connect_better_wins_even_if_it_is_smaller() -> None:
    workstation = node("ws", "workstation-4gpu-nvlink-pairs.toml", order=0)  # NV4 pairs, PHB between
    pcie = node("pcie", "pcie-8gpu-dual-socket.toml", order=1)
    assert ranked([pcie, workstation], cuda_device=2) == ["ws", "pcie"]
    # Break the workstation's NVLink pairs: one GPU of each pair busy leaves two GPUs joined by PHB only.
    assert workstation.state.gpus is not None
    workstation.state.gpus.take({0: D("0.5"), 2: D("0.5")})
    assert ranked([workstation, pcie], cuda_device=2)[0] == "pcie"


def test_fractions_go_best_fit_across_nodes() -> None:
    a = node("a", "mock-2gpu.toml", order=0)
    b = node("b", "mock-2gpu.toml", order=1)
    assert b.state.gpus is not None
    b.state.gpus.take({1: D("0.7")})  # 0.3 left: the tightest fit for 0.25
    assert ranked([a, b], cuda_shares="0.25") == ["b", "a"]
    # 0.5 does not fit in b's 0.3: both nodes would use a fully free GPU, a tie kept in first-fit order.
    assert ranked([a, b], cuda_shares="0.5") == ["a", "b"]


def test_requests_without_gpus_prefer_gpu_less_nodes_then_first_fit_order() -> None:
    nodes = [node("late", "dgx-a100.toml", order=2), node("early", None, order=0), node("mid", "mock-2gpu.toml", order=1)]
    assert ranked(nodes) == ["early", "mid", "late"]


def test_reservation_records_gpu_detail_from_the_nodes_topology() -> None:
    gpu_node = node("g", "mock-2gpu.toml", order=0)
    request = ResourceSlot({"cpu": 1, "mem": 2**20, "cuda.shares": "0.25"})
    candidate = feasible([gpu_node], request)[0]
    record = allocation_record(candidate)
    topology = load("mock-2gpu.toml")
    assert record["gpu_shares"] == {"0": "0.25"}
    assert record["gpus"] == [
        {"index": 0, "uuid": topology.devices[0].uuid, "model": "NVIDIA Mock GPU", "share": "0.25", "mem_limit": 4 * 2**30}
    ]
    plain = feasible([node("c", None, order=0)], ResourceSlot({"cpu": 1}))[0]
    assert "gpus" not in allocation_record(plain)


def test_agents_view_shows_gpus_free_shares_and_links() -> None:
    topology = load("workstation-4gpu-nvlink-pairs.toml")
    allocations = [
        {"cpu": "1", "mem": 1, "gpu_shares": {"0": "1", "1": "1"}, "gpu_whole": True},
        {"cpu": "1", "mem": 1, "gpu_shares": {"2": "0.25"}, "gpu_whole": False},
        {"cpu": "1", "mem": 1},
    ]
    view = gpu_view(topology.to_json(), allocations)
    assert [(g["index"], g["uuid"], g["free_share"]) for g in view["gpus"]] == [
        (0, topology.devices[0].uuid, "0"),
        (1, topology.devices[1].uuid, "0"),
        (2, topology.devices[2].uuid, "0.75"),
        (3, topology.devices[3].uuid, "1"),
    ]
    assert view["gpu_links"][0] == ["X", "NV4", "PHB", "PHB"]
    assert gpu_view(topology.to_json(), [])["gpus"][0]["free_share"] == "1"
    assert gpu_view(topology.to_json(), None)["gpus"][0]["free_share"] is None  # unknown without allocations
    assert gpu_view(None, None) == {"gpus": [], "gpu_links": []}


def test_cpu_only_work_keeps_off_nodes_with_idle_gpus() -> None:
    gpu_node = node("gpu", "mock-2gpu.toml", order=0)
    cpu_node = node("cpu", None, order=1)
    assert ranked([gpu_node, cpu_node]) == ["cpu", "gpu"]
    # Once the GPUs are all busy, the GPU node's cores are fair game again (first-fit order).
    assert gpu_node.state.gpus is not None
    gpu_node.state.gpus.take({0: D(1), 1: D(1)})
    assert ranked([gpu_node, cpu_node]) == ["gpu", "cpu"]
