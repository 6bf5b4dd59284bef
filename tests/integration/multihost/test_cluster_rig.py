"""Multi-node cluster sessions across two hosts of the rig: Corral's manager on h1, an agent per host,
each host its own dockerd. The kernels of a multi-node session land on different hosts, find each
other by name, talk across the rig's LAN, and PyTorch's torchrun trains across them."""
from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from corral.kernels.builder import build_image
from tests.fixtures.multihost import MultiHostRig
from tests.fixtures.rig_stack import RigStack, corral_on_rig

pytestmark = [pytest.mark.slow, pytest.mark.multihost, pytest.mark.docker, pytest.mark.timeout(900)]

PYTORCH_IMAGE = "corral/pytorch:latest"  # what `--image pytorch` names (the 2.13 recipe tags it)

# main1 listens on MASTER_PORT; each worker connects from its host and says who it is.
RENDEZVOUS = r"""
import os, socket, time
role, port, addr = os.environ["CORRAL_CLUSTER_ROLE"], int(os.environ["MASTER_PORT"]), os.environ["MASTER_ADDR"]
print("kernel", os.environ["CORRAL_CLUSTER_HOST"], "rank", os.environ["RANK"], "of", os.environ["WORLD_SIZE"],
      "hosts", os.environ["CORRAL_CLUSTER_HOSTS"], "master", addr, flush=True)
if role == "main":
    server = socket.create_server(("", port))
    server.settimeout(120)
    for _ in range(int(os.environ["WORLD_SIZE"]) - 1):
        conn, peer = server.accept()
        print("main1 heard:", conn.recv(100).decode(), "from", peer[0], flush=True)
        conn.close()
else:
    for attempt in range(240):
        try:
            with socket.create_connection(("main1", port), timeout=2) as conn:
                conn.sendall(("hello from " + os.environ["CORRAL_CLUSTER_HOST"]).encode())
            break
        except OSError:
            time.sleep(0.5)
    else:
        raise SystemExit("could not reach main1")
"""

# Two nodes, one process each, gloo: an all-reduce and a few DDP steps on a tiny model.
TRAIN = r"""
import os, torch, torch.distributed as dist
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
t = torch.tensor([rank + 1.0])
dist.all_reduce(t)
torch.manual_seed(0)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
g = torch.Generator().manual_seed(rank)
x = torch.randn(64, 8, generator=g); y = x.sum(dim=1, keepdim=True)
for step in range(30):
    opt.zero_grad(); loss = torch.nn.functional.mse_loss(model(x), y); loss.backward(); opt.step()
w = model.module.weight.detach().clone(); dist.all_reduce(w); w /= world
same = torch.allclose(w, model.module.weight.detach(), atol=1e-6)
print(f"rank {rank}/{world} allreduce={t.item():.0f} loss={loss.item():.4f} in_sync={same}", flush=True)
dist.destroy_process_group()
"""


@pytest.fixture(scope="module")
def stack(multihost: MultiHostRig, base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RigStack]:
    asyncio.run(build_image("pytorch-2.13"))  # once (a minute or two), then reused; tags corral/pytorch:latest
    images = [base_image]
    if subprocess.run(["docker", "image", "inspect", PYTORCH_IMAGE], capture_output=True).returncode == 0:
        images.append(PYTORCH_IMAGE)
    with corral_on_rig(multihost, tmp_path_factory.mktemp("rig-stack"), images=images) as running:
        running.images = images  # type: ignore[attr-defined]
        yield running


def _session(stack: RigStack, name: str) -> dict:
    return json.loads(stack.cli("session", "info", name, "--json", check=True).stdout)


def test_multi_node_kernels_on_two_hosts_reach_each_other(stack: RigStack) -> None:
    command = f"python3 -c {shlex.quote(RENDEZVOUS)}"
    run = stack.cli("run", "--name", "rendezvous", "--keep", "--cpu", "0.5", "--mem", "256m",
                    "--cluster-size", "2", "--cluster-mode", "multi-node", "--", command, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr + stack.diagnostics()
    out = run.stdout
    # Every kernel's output, labelled by kernel.
    assert re.search(r"^\[main1\] kernel main1 rank 0 of 2 hosts main1,sub1", out, re.M), out
    assert re.search(r"^\[sub1\] kernel sub1 rank 1 of 2", out, re.M), out
    info = _session(stack, "rendezvous")
    kernels = {k["name"]: k for k in info["kernels"]}
    assert set(kernels) == {"main1", "sub1"} and info["cluster_mode"] == "multi-node"
    assert kernels["main1"]["agent_id"] != kernels["sub1"]["agent_id"]  # one kernel per host
    main_host = stack.rig[kernels["main1"]["agent_id"].removeprefix("rig-")]
    sub_host = stack.rig[kernels["sub1"]["agent_id"].removeprefix("rig-")]
    # MASTER_ADDR is main1's host address; the worker's bytes arrived from the other host over the LAN.
    assert f"master {main_host.ip}" in out
    assert re.search(rf"^\[main1\] main1 heard: hello from sub1 from {re.escape(sub_host.ip)}$", out, re.M), out
    assert info["status"] == "TERMINATED" and info["exit_code"] == 0
    ports = {k["allocation"]["ports"]["base"] for k in kernels.values()}
    assert len(ports) == 1  # the same block on both hosts
    assert stack.cli("session", "rm", "rendezvous").returncode == 0


def test_a_failing_worker_ends_the_session_naming_it(stack: RigStack) -> None:
    command = 'if [ "$CORRAL_CLUSTER_ROLE" = sub ]; then echo worker failing; exit 7; fi; sleep 300'
    run = stack.cli("run", "--name", "failing", "--cpu", "0.5", "--mem", "256m",
                    "--cluster-size", "2", "--cluster-mode", "multi-node", "--", command, timeout=300)
    assert run.returncode == 7, run.stdout + run.stderr
    assert "[sub1] worker failing" in run.stdout
    assert "sub1 failed: exit code 7" in run.stderr
    # Both hosts are left with no container of it.
    for host in stack.rig:
        assert "corral-failing" not in host.docker("ps", "-a", "--format", "{{.Names}}").stdout


def test_torchrun_trains_across_two_hosts(stack: RigStack, tmp_path: Path) -> None:
    if PYTORCH_IMAGE not in stack.images:  # type: ignore[attr-defined]
        pytest.skip(f"{PYTORCH_IMAGE} is not built (`corral image build pytorch-2.13`)")
    launch = (f"printf %s {shlex.quote(TRAIN)} > /tmp/train.py && exec torchrun --nnodes \"$NNODES\" "
              "--node-rank \"$NODE_RANK\" --nproc-per-node 1 --master-addr \"$MASTER_ADDR\" "
              "--master-port \"$MASTER_PORT\" /tmp/train.py")
    run = stack.cli("run", "--name", "ddp", "--image", "pytorch", "--cpu", "1", "--mem", "1536m",
                    "--cluster-size", "2", "--cluster-mode", "multi-node", "--", launch, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr + stack.diagnostics()
    # rank 0 on main1, rank 1 on sub1 (torchrun's node rank): the all-reduce summed 1 + 2 across the hosts.
    for kernel, rank in (("main1", 0), ("sub1", 1)):
        line = re.search(rf"^\[{kernel}\] rank {rank}/2 allreduce=3 loss=([0-9.]+) in_sync=True$", run.stdout, re.M)
        assert line, run.stdout
        assert float(line.group(1)) < 1.0  # it learned
