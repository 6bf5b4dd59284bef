"""GPU sessions end to end on mock-GPU agents: real manager, real agents, real containers.

The agents use the `mock` plugin (topology files from configs/gpus/), so the
host needs no GPU: everything but the Docker device request is what a CUDA
node does — placement, env, sitecustomize, allocation records, release.
"""
from __future__ import annotations

import json
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any, AsyncIterator

import aiodocker
import pytest

from corral.client.api import AsyncCorralClient
from corral.common.errors import UnsatisfiableRequest
from corral.manager.db.models import Agent
from corral.manager.session_views import agent_views
from sqlalchemy import select

from tests.integration.spine.cluster import LiveCluster

pytestmark = [pytest.mark.docker]

GPU_CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "gpus"


def mock_gpus(file: str, sharing: str = "framework") -> dict[str, str]:
    return {"plugin": "mock", "topology": str(GPU_CONFIGS / file), "sharing": sharing}


@pytest.fixture
async def gpu_cluster(tmp_path: Path, base_image: str) -> AsyncIterator[LiveCluster]:
    cluster = LiveCluster(db_url=f"sqlite:///{tmp_path / 'corral.db'}", heartbeat_timeout_s=5.0)
    await cluster.start_manager()
    try:
        yield cluster
    finally:
        await cluster.stop()


async def running(client: AsyncCorralClient, resources: dict[str, Any], name: str) -> dict[str, Any]:
    session = await client.create_session(resources=resources, name=name)
    await client.wait_for_status(session.id, {"RUNNING"}, timeout=90)
    return (await client.get_session(session.id)).raw


async def free_shares(cluster: LiveCluster) -> dict[str, list[str | None]]:
    """What GET /api/v1/agents shows per agent: free share per GPU (via the view the endpoint uses)."""
    async with cluster.manager.sessionmaker() as db:
        agents = (await db.scalars(select(Agent).order_by(Agent.first_contact, Agent.id))).all()
        views = await agent_views(db, agents)
    return {view["id"]: [g["free_share"] for g in view["gpus"]] for view in views}


ENV_PROBE = textwrap.dedent(
    """
    import json, os, sys
    import sitecustomize
    print(json.dumps({
        "env": {k: v for k, v in os.environ.items() if k.startswith(("CORRAL_", "CUDA_", "NVIDIA_", "XLA_", "PYTHONPATH"))},
        "sitecustomize": getattr(sitecustomize, "__file__", None),
        "hooks": [sorted(getattr(f, "hooks", {})) for f in sys.meta_path if type(f).__name__ == "PostImportHooks"],
    }))
    """
)

# In the container: a stand-in `torch` on disk, a fresh interpreter with the
# kernel's env, and the fraction PyTorch was given once "CUDA" initialised.
TORCH_PROBE = textwrap.dedent(
    """
    import json, os, subprocess, sys, tempfile
    root = tempfile.mkdtemp()
    os.makedirs(os.path.join(root, "torch", "cuda"))
    open(os.path.join(root, "torch", "__init__.py"), "w").write("from torch import cuda as cuda\\n")
    open(os.path.join(root, "torch", "cuda", "__init__.py"), "w").write(
        "_q = []\\ncalls = []\\n"
        "def _lazy_call(fn): _q.append(fn)\\n"
        "def _lazy_init():\\n    [fn() for fn in _q]\\n"
        "def device_count(): return 1\\n"
        "def set_per_process_memory_fraction(f, d): calls.append([f, d])\\n"
    )
    code = "import torch; n = len(torch.cuda._q); torch.cuda._lazy_init(); print(n, torch.cuda.calls)"
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", "") + ":" + root)
    print(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip())
    """
)


async def probe(client: AsyncCorralClient, session_id: str) -> dict[str, Any]:
    result = await client.execute_collect(session_id, ENV_PROBE)
    assert result.exit_code == 0, result.stderr + (result.error or "")
    return json.loads(result.stdout.strip().splitlines()[-1])


async def test_whole_and_fractional_gpus_reach_the_container(gpu_cluster: LiveCluster) -> None:
    agent = await gpu_cluster.start_agent("ws", gpu=mock_gpus("workstation-4gpu-nvlink-pairs.toml"))
    topology = agent.gpu_topology
    client = gpu_cluster.client()

    whole = await running(client, {"cpu": "2", "mem": "256m", "cuda.device": 2}, "two-gpus")
    part = await running(client, {"cpu": "1", "mem": "256m", "cuda.shares": "0.25"}, "quarter")

    # What session info shows: devices, UUIDs, shares, memory limits, cores near the GPUs.
    whole_alloc = whole["kernels"][0]["allocation"]
    assert [g["index"] for g in whole_alloc["gpus"]] == [0, 1]  # an NVLink pair
    assert [g["uuid"] for g in whole_alloc["gpus"]] == [topology.devices[0].uuid, topology.devices[1].uuid]
    assert all(g["share"] == "1" and g["mem_limit"] == topology.devices[0].memory for g in whole_alloc["gpus"])
    assert len(whole_alloc["cpu_cores"]) == 2 and whole_alloc["numa_nodes"] == [0] and not whole_alloc["cpu_spilled"]
    part_alloc = part["kernels"][0]["allocation"]
    assert part_alloc["gpu_shares"] == {"2": "0.25"}  # best-fit left the other whole GPU free
    quarter_mem = int(Decimal("0.25") * topology.devices[2].memory)
    assert part_alloc["gpus"] == [
        {"index": 2, "uuid": topology.devices[2].uuid, "model": topology.devices[2].model, "share": "0.25",
         "mem_limit": quarter_mem}
    ]

    # Inside the containers.
    seen = await probe(client, whole["id"])
    pair = f"{topology.devices[0].uuid},{topology.devices[1].uuid}"
    assert seen["env"]["CORRAL_GPU_DEVICES"] == seen["env"]["CUDA_VISIBLE_DEVICES"] == pair
    assert seen["env"]["CORRAL_GPU_INDEXES"] == "0,1"
    assert seen["env"]["CORRAL_GPU_SHARES"] == "1,1"
    assert seen["env"]["CORRAL_GPU_SHARING"] == "exclusive"
    assert seen["env"]["NVIDIA_VISIBLE_DEVICES"] == "void"  # mock: no real GPU is handed over
    assert "PYTHONPATH" not in seen["env"] and seen["hooks"] == []

    seen = await probe(client, part["id"])
    assert seen["env"]["CORRAL_GPU_DEVICES"] == topology.devices[2].uuid
    assert seen["env"]["CORRAL_GPU_SHARES"] == "0.25"
    assert seen["env"]["CORRAL_GPU_MEM_LIMIT"] == str(quarter_mem)
    assert seen["env"]["CORRAL_GPU_SHARING"] == "framework"
    assert seen["env"]["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.25"
    assert seen["env"]["PYTHONPATH"] == "/opt/corral/gpu"
    assert seen["sitecustomize"] == "/opt/corral/gpu/sitecustomize.py"
    assert seen["hooks"] == [["tensorflow", "torch.cuda"]]
    result = await client.execute_collect(part["id"], TORCH_PROBE)
    assert result.stdout.strip() == "1 [[0.25, 0]]", result.stderr

    async with aiodocker.Docker() as docker:
        details = await docker.containers.container(part["kernels"][0]["container_id"]).show()
    assert not details["HostConfig"].get("DeviceRequests")  # mock node: nothing for Docker to hand over
    assert details["HostConfig"]["NanoCpus"] == 1_000_000_000  # the CPU quota is enforced on this host

    assert (await free_shares(gpu_cluster))[agent.agent_id] == ["0", "0", "0.75", "1"]
    await client.destroy_session(whole["id"])
    await client.destroy_session(part["id"])
    await client.wait_for_status(whole["id"], {"TERMINATED"}, timeout=30)
    await client.wait_for_status(part["id"], {"TERMINATED"}, timeout=30)
    # Release restores capacity exactly, in the manager's view and on the agent.
    assert (await free_shares(gpu_cluster))[agent.agent_id] == ["1", "1", "1", "1"]
    gpus = agent.kernels.state.gpus
    assert gpus is not None and set(gpus.free_shares.values()) == {Decimal(1)}
    listed = {a.id: a for a in await client.list_agents()}[agent.agent_id]
    assert [g["uuid"] for g in listed.gpus] == [d.uuid for d in topology.devices]
    assert listed.raw["gpu_links"][0] == ["X", "NV4", "PHB", "PHB"]


async def test_scheduler_picks_the_node_with_the_better_connected_set(gpu_cluster: LiveCluster) -> None:
    # Registered first, so first-fit would choose it: 8 PCIe GPUs over two sockets.
    pcie = await gpu_cluster.start_agent("pcie", gpu=mock_gpus("pcie-8gpu-dual-socket.toml"))
    nvswitch = await gpu_cluster.start_agent("dgx", gpu=mock_gpus("dgx-a100.toml"))
    client = gpu_cluster.client()

    four = await running(client, {"cpu": "1", "mem": "256m", "cuda.device": 4}, "four")
    assert four["agent_id"] == nvswitch.agent_id
    allocated = {g["uuid"] for g in four["kernels"][0]["allocation"]["gpus"]}
    assert allocated <= {d.uuid for d in nvswitch.gpu_topology.devices}
    # Agents sharing a topology file would still have distinct GPUs: UUIDs are seeded by agent id.
    assert not allocated & {d.uuid for d in pcie.gpu_topology.devices}

    frees = await free_shares(gpu_cluster)
    assert frees[pcie.agent_id] == ["1"] * 8
    assert sorted(frees[nvswitch.agent_id]) == ["0"] * 4 + ["1"] * 4
    await client.destroy_session(four["id"])
    await client.wait_for_status(four["id"], {"TERMINATED"}, timeout=30)
    assert (await free_shares(gpu_cluster))[nvswitch.agent_id] == ["1"] * 8


async def test_gpu_requests_no_agent_could_fit_name_the_gpu_slot(gpu_cluster: LiveCluster) -> None:
    await gpu_cluster.start_agent("small", gpu=mock_gpus("mock-2gpu.toml"))
    client = gpu_cluster.client()
    with pytest.raises(UnsatisfiableRequest) as too_many:
        await client.create_session(resources={"cuda.device": 3})
    assert too_many.value.extra["slots"] == ["cuda.device"]
    with pytest.raises(UnsatisfiableRequest) as too_much:
        await client.create_session(resources={"cuda.shares": "2.5"})
    assert too_much.value.extra["slots"] == ["cuda.shares"]
