"""Cluster sessions through the manager's lifecycle services, on SQLite and PostgreSQL: gang placement
(single-node on one agent, multi-node one kernel per agent with a shared port block), what each kernel's
agent is told of its peers, a gang whose later kernel's agent is unreachable going back to the queue
whole, and how one kernel's end ends (or does not end) the session."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from corral.common.cluster import MAX_CLUSTER_SIZE, PORT_BLOCK, PORT_RANGE
from corral.common.errors import NotFound, ServiceUnavailable, UnsatisfiableRequest
from corral.common.node_resources import NodeCapacity
from corral.manager.clock import utcnow
from corral.manager.db.models import Agent, Kernel, Session

from .harness import AGENT_ADDRESS, AGENT_ID, Lab, Manager, ScriptedAgents

# The harness's agent is node-1 (8 cores, 16 GiB); these join it, registered after it.
MORE_AGENTS = {"node-2": "http://10.0.0.2:6001", "node-3": "http://10.0.0.3:6001"}
ADDRESSES = {AGENT_ID: AGENT_ADDRESS, **MORE_AGENTS}
BATCH = {"type": "batch", "command": ["train"]}


@dataclass
class ClusterAgents(ScriptedAgents):
    """The harness's scripted agents, per address: some unreachable, some kernels refused for good."""

    down: set[str] = field(default_factory=set)  # addresses whose creates cannot get through
    refuse_idx: dict[int, str] = field(default_factory=dict)  # cluster index -> a definite refusal
    created_on: dict[str, str] = field(default_factory=dict)  # kernel id -> address it was created on
    destroyed: list[str] = field(default_factory=list)  # kernel ids the manager asked to remove

    async def create_kernel(self, address: str, spec: dict[str, Any]) -> Any:
        if address in self.down:
            self.create_calls += 1
            raise ServiceUnavailable(f"agent at {address} is unreachable: connection refused")
        if spec["cluster_idx"] in self.refuse_idx:
            self.create_calls += 1
            raise NotFound(self.refuse_idx[spec["cluster_idx"]])
        result = await super().create_kernel(address, spec)
        self.created_on[spec["kernel_id"]] = address
        return result

    async def destroy_kernel(self, address: str, kernel_id: str, reason: str) -> Any:
        self.destroyed.append(kernel_id)
        return await super().destroy_kernel(address, kernel_id, reason)


async def add_agents(lab: Lab, names: list[str]) -> None:
    """More agents like the harness's own (same capacity), registered after it, in this order."""
    capacity = NodeCapacity(tuple(range(8)), 16 << 30, {c: 0 for c in range(8)})
    now = utcnow()
    async with lab.sessionmaker() as db:
        for i, name in enumerate(names, start=1):
            db.add(Agent(
                id=name, address=MORE_AGENTS[name], status="ALIVE", capacity=capacity.to_json(),
                available_slots=capacity.slots().to_json(), occupied_slots={}, images=[],
                first_contact=now + timedelta(seconds=i), last_heartbeat=now,
            ))
        await db.commit()


def cluster_lab(lab: Lab) -> ClusterAgents:
    agents = ClusterAgents()
    lab.agents = agents
    return agents


async def session_row(lab: Lab, session_id: str) -> Session:
    async with lab.sessionmaker() as db:
        sess = await db.get(Session, session_id)
        assert sess is not None
        return sess


async def kernels(lab: Lab, session_id: str) -> list[Kernel]:
    return sorted(await lab.kernels(session_id), key=lambda k: k.cluster_idx)


async def occupied(lab: Lab) -> dict[str, dict[str, Any]]:
    async with lab.sessionmaker() as db:
        return {agent.id: dict(agent.occupied_slots) for agent in (await db.scalars(select(Agent))).all()}


async def nothing_occupied(lab: Lab) -> bool:
    return not any(Decimal(v) for slots in (await occupied(lab)).values() for v in slots.values())


async def placed(lab: Lab, manager: Manager, session_id: str) -> list[Kernel]:
    """One pass places the session (and only it); its kernels once the bind is done."""
    assert await manager.core.scheduler.run_pass() == 1
    await manager.settle()
    return await kernels(lab, session_id)


async def report_running(lab: Lab, manager: Manager, session_id: str) -> None:
    for kernel in await kernels(lab, session_id):
        assert await manager.core.kernel_events.running(kernel.id, f"c-{kernel.id[:8]}", agent_id=kernel.agent_id)


async def running(lab: Lab, manager: Manager, **request: Any) -> str:
    session_id = await lab.create(manager, **request)
    await placed(lab, manager, session_id)
    await report_running(lab, manager, session_id)
    assert await lab.status(session_id) == "RUNNING"
    return session_id


async def kernel_exits(lab: Lab, manager: Manager, kernel: Kernel, exit_code: int) -> None:
    """The agent reports that the kernel's container exited by itself (and is gone)."""
    lab.agents.containers.pop(kernel.id, None)
    assert await manager.core.kernel_events.ended(kernel.id, exit_code, "container exited", "",
                                                  agent_id=kernel.agent_id)


# -- placement and what the agents are told --------------------------------------------------------


async def test_a_single_node_cluster_is_placed_and_started_together_on_one_agent(lab: Lab) -> None:
    agents = cluster_lab(lab)
    await add_agents(lab, ["node-2"])
    manager = lab.manager()
    manager.core.binder.spawn_many = lambda sids: []  # type: ignore[method-assign] - placed, bind not yet begun
    session_id = await lab.create(manager, cluster_size=3)
    created = await kernels(lab, session_id)
    assert [k.cluster_idx for k in created] == [0, 1, 2]
    assert {k.status for k in created} == {"PENDING"} and {k.agent_id for k in created} == {None}

    assert await manager.core.scheduler.run_pass() == 1
    scheduled = await kernels(lab, session_id)
    assert {k.status for k in scheduled} == {"SCHEDULED"}
    assert {k.agent_id for k in scheduled} == {AGENT_ID}
    cores = [set(k.allocation["cpu_cores"]) for k in scheduled]  # type: ignore[index]
    assert all(len(c) == 1 for c in cores) and len(set().union(*cores)) == 3
    assert all("ports" not in (k.allocation or {}) for k in scheduled)  # single-node: its own network
    now_occupied = await occupied(lab)
    assert Decimal(now_occupied[AGENT_ID]["cpu"]) == 3
    assert not any(Decimal(v) for v in now_occupied["node-2"].values())

    await manager.core.binder.bind(session_id)
    await manager.settle()
    assert {k.status for k in await kernels(lab, session_id)} == {"PREPARING"}
    assert await lab.history(session_id) == ["PENDING", "SCHEDULED", "PREPARING"]
    assert set(agents.created_on.values()) == {AGENT_ADDRESS}

    sess = await session_row(lab, session_id)
    assert sess.cluster_ssh_key and sess.cluster_ssh_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    specs = [agents.containers[k.id] for k in scheduled]
    public_keys = set()
    for idx, spec in enumerate(specs):
        cluster = spec["cluster"]
        assert spec["cluster_idx"] == cluster["idx"] == idx
        assert (cluster["size"], cluster["mode"]) == (3, "single-node")
        assert cluster["peers"] == [{"name": "main1", "idx": 0, "address": None},
                                    {"name": "sub1", "idx": 1, "address": None},
                                    {"name": "sub2", "idx": 2, "address": None}]
        assert (cluster["port_base"], cluster["port_count"]) == (0, 0)
        assert cluster["ssh_private_key"] == sess.cluster_ssh_key
        assert cluster["ssh_public_key"].startswith("ssh-ed25519 ")
        public_keys.add(cluster["ssh_public_key"])
    assert len(public_keys) == 1

    # RUNNING only once every kernel runs.
    first, *rest = scheduled
    assert await manager.core.kernel_events.running(first.id, "c-0", agent_id=AGENT_ID)
    assert await lab.status(session_id) == "PREPARING"
    for kernel in rest:
        assert await manager.core.kernel_events.running(kernel.id, "c-x", agent_id=AGENT_ID)
    assert await lab.status(session_id) == "RUNNING"


async def test_a_multi_node_cluster_has_one_kernel_per_agent_and_one_port_block(lab: Lab) -> None:
    agents = cluster_lab(lab)
    await add_agents(lab, ["node-2", "node-3"])
    manager = lab.manager()
    session_id = await lab.create(manager, cluster_size=3, cluster_mode="multi-node")
    placed_kernels = await placed(lab, manager, session_id)
    assert [k.agent_id for k in placed_kernels] == [AGENT_ID, "node-2", "node-3"]  # registration order
    assert {k.status for k in placed_kernels} == {"PREPARING"}
    ports = [k.allocation["ports"] for k in placed_kernels]  # type: ignore[index]
    assert ports[0] == ports[1] == ports[2] == {"base": PORT_RANGE[0], "count": PORT_BLOCK}
    for slots in (await occupied(lab)).values():
        assert Decimal(slots["cpu"]) == 1

    peers = [{"name": "main1", "idx": 0, "address": "agent.invalid"},
             {"name": "sub1", "idx": 1, "address": "10.0.0.2"},
             {"name": "sub2", "idx": 2, "address": "10.0.0.3"}]
    for kernel in placed_kernels:
        assert agents.created_on[kernel.id] == ADDRESSES[kernel.agent_id]  # type: ignore[index]
        cluster = agents.containers[kernel.id]["cluster"]
        assert (cluster["mode"], cluster["idx"], cluster["peers"]) == ("multi-node", kernel.cluster_idx, peers)
        assert (cluster["port_base"], cluster["port_count"]) == (PORT_RANGE[0], PORT_BLOCK)
        assert agents.containers[kernel.id]["allocation"]["ports"] == ports[0]


async def test_concurrent_multi_node_sessions_on_the_same_agents_get_different_blocks(lab: Lab) -> None:
    cluster_lab(lab)
    await add_agents(lab, ["node-2"])
    manager = lab.manager()
    # Two reserved in the same pass, a third in a later one (its block read back from the database).
    first = await lab.create(manager, cluster_size=2, cluster_mode="multi-node")
    second = await lab.create(manager, cluster_size=2, cluster_mode="multi-node")
    assert await manager.core.scheduler.run_pass() == 2
    third = await lab.create(manager, cluster_size=2, cluster_mode="multi-node")
    assert await manager.core.scheduler.run_pass() == 1
    await manager.settle()
    bases = []
    for session_id in (first, second, third):
        gang = await kernels(lab, session_id)
        assert sorted(k.agent_id for k in gang) == [AGENT_ID, "node-2"]  # type: ignore[type-var]
        (base,) = {k.allocation["ports"]["base"] for k in gang}  # type: ignore[index]
        bases.append(base)
    assert sorted(bases) == [PORT_RANGE[0], PORT_RANGE[0] + PORT_BLOCK, PORT_RANGE[0] + 2 * PORT_BLOCK]

    # A session that ended gives its block back: the next one takes the lowest free block again.
    view, final = await manager.sessions.destroy(lab.user, first)
    await manager.settle()
    assert await lab.status(first) == "TERMINATED"
    fourth = await lab.create(manager, cluster_size=2, cluster_mode="multi-node")
    gang = await placed(lab, manager, fourth)
    assert {k.allocation["ports"]["base"] for k in gang} == {bases[0]}  # type: ignore[index]


async def test_a_single_node_cluster_no_agent_can_hold_is_refused_while_a_multi_node_one_starts(lab: Lab) -> None:
    """Three kernels of 4 cores: no agent of 8 holds them, three agents of 8 do (one each)."""
    cluster_lab(lab)
    await add_agents(lab, ["node-2", "node-3"])
    manager = lab.manager()
    with pytest.raises(UnsatisfiableRequest, match="on one node"):
        await lab.create(manager, cluster_size=3, resources={"cpu": "4", "mem": "1g"})
    spread = await lab.create(manager, cluster_size=3, cluster_mode="multi-node", resources={"cpu": "4", "mem": "1g"})
    assert len({k.agent_id for k in await placed(lab, manager, spread)}) == 3


# -- going back to the queue whole ---------------------------------------------------------------


async def test_an_unreachable_agent_for_a_later_kernel_sends_the_whole_gang_back_to_the_queue(lab: Lab) -> None:
    agents = cluster_lab(lab)
    await add_agents(lab, ["node-2"])
    agents.down.add(MORE_AGENTS["node-2"])
    manager = lab.manager()
    # Whole nodes: what the first try held must all be free again for the next one.
    session_id = await lab.create(manager, cluster_size=2, cluster_mode="multi-node", resources={"cpu": "8", "mem": "1g"})
    assert await manager.core.scheduler.run_pass() == 1
    await manager.settle()

    assert await lab.status(session_id) == "PENDING"
    assert await lab.history(session_id) == ["PENDING", "SCHEDULED", "PREPARING", "PENDING"]
    reason = (await lab.history_reasons(session_id))[-1]
    assert reason.startswith("agent node-2 could not be reached (") and reason.endswith("); back in the queue")
    # main1 was created on node-1 first: it was removed again, nothing of the gang is left anywhere.
    (main_id,) = agents.created_on
    assert agents.destroyed == [main_id] and main_id in agents.tombstones
    assert not agents.containers
    requeued = await kernels(lab, session_id)
    assert [k.cluster_idx for k in requeued] == [0, 1]
    for kernel in requeued:
        assert (kernel.status, kernel.agent_id, kernel.allocation, kernel.container_id) == ("PENDING", None, None, None)
    assert main_id not in {k.id for k in requeued}  # a new id per placement
    assert await nothing_occupied(lab)
    # A late report about the removed kernel changes nothing.
    assert not await manager.core.kernel_events.running(main_id, "c-late", agent_id=AGENT_ID)

    # The agent is back: the gang starts whole.
    agents.down.clear()
    again = await placed(lab, manager, session_id)
    assert [k.agent_id for k in again] == [AGENT_ID, "node-2"]
    assert {k.status for k in again} == {"PREPARING"}
    assert set(agents.containers) == {k.id for k in again}


# -- how kernels' ends end a batch cluster session -------------------------------------------------


async def test_a_worker_ending_0_leaves_the_session_running_until_main1_ends_it(lab: Lab) -> None:
    agents = cluster_lab(lab)
    manager = lab.manager()
    session_id = await running(lab, manager, cluster_size=3, **BATCH)
    main1, sub1, sub2 = await kernels(lab, session_id)

    await kernel_exits(lab, manager, sub1, 0)
    await manager.settle()
    assert await lab.status(session_id) == "RUNNING"
    assert sub2.id in agents.containers and main1.id in agents.containers

    await kernel_exits(lab, manager, main1, 3)
    await manager.settle()
    sess = await session_row(lab, session_id)
    assert (sess.status, sess.exit_code) == ("TERMINATED", 3)
    assert sess.status_reason == "main1's batch command failed with exit code 3"
    history, reasons = await lab.history(session_id), await lab.history_reasons(session_id)
    assert history[-3:] == ["RUNNING", "TERMINATING", "TERMINATED"]
    assert reasons[-2] == "cluster: main1's batch command failed with exit code 3; stopping its other kernels"
    # sub2 was still running: the manager removed it. sub1 had ended by itself: never asked.
    assert agents.destroyed == [sub2.id] and not agents.containers
    ended = {k.cluster_idx: k for k in await kernels(lab, session_id)}
    assert {k.status for k in ended.values()} == {"TERMINATED"}
    assert (ended[0].exit_code, ended[1].exit_code) == (3, 0)
    assert await nothing_occupied(lab)


async def test_main1_ending_0_ends_the_session_as_succeeded(lab: Lab) -> None:
    cluster_lab(lab)
    manager = lab.manager()
    session_id = await running(lab, manager, cluster_size=2, **BATCH)
    main1, _ = await kernels(lab, session_id)
    await kernel_exits(lab, manager, main1, 0)
    await manager.settle()
    sess = await session_row(lab, session_id)
    assert (sess.status, sess.exit_code) == ("TERMINATED", 0)
    assert sess.status_reason == "main1's batch command succeeded with exit code 0"
    assert not lab.agents.containers


async def test_a_failing_worker_ends_the_session_with_its_exit_code_and_name(lab: Lab) -> None:
    agents = cluster_lab(lab)
    await add_agents(lab, ["node-2", "node-3"])
    manager = lab.manager()
    session_id = await running(lab, manager, cluster_size=3, cluster_mode="multi-node", **BATCH)
    main1, sub1, sub2 = await kernels(lab, session_id)

    await kernel_exits(lab, manager, sub1, 1)
    await manager.settle()
    sess = await session_row(lab, session_id)
    assert (sess.status, sess.exit_code) == ("TERMINATED", 1)
    assert sess.status_reason == "sub1 failed: exit code 1"
    assert (await lab.history_reasons(session_id))[-2] == "cluster: sub1 failed: exit code 1; stopping its other kernels"
    assert sorted(agents.destroyed) == sorted([main1.id, sub2.id]) and not agents.containers
    assert await nothing_occupied(lab)


async def test_a_kernel_that_cannot_start_fails_the_session_and_removes_the_others(lab: Lab) -> None:
    agents = cluster_lab(lab)
    agents.refuse_idx[1] = "image img:1 not found on the agent"
    manager = lab.manager()
    session_id = await lab.create(manager, cluster_size=3, **BATCH)
    assert await manager.core.scheduler.run_pass() == 1
    await manager.settle()

    sess = await session_row(lab, session_id)
    assert sess.status == "ERROR"
    assert sess.status_reason == "sub1 could not start: image img:1 not found on the agent"
    assert (await lab.history(session_id))[-2:] == ["TERMINATING", "ERROR"]
    main1, sub1, sub2 = await kernels(lab, session_id)
    assert sub1.status == "ERROR"
    assert main1.status == "TERMINATED" and sub2.status == "TERMINATED"
    # main1 had been created: removed. sub2 was never asked for; the destroy leaves a tombstone so a
    # create that is still on its way is refused.
    assert agents.create_calls == 2 and set(agents.created_on) == {main1.id}
    assert agents.destroyed == [main1.id, sub2.id] and not agents.containers
    assert sub2.id in agents.tombstones
    assert await nothing_occupied(lab)


async def test_destroying_a_cluster_session_removes_every_kernel(lab: Lab) -> None:
    agents = cluster_lab(lab)
    await add_agents(lab, ["node-2"])
    manager = lab.manager()
    single = await running(lab, manager, cluster_size=3)
    spread = await running(lab, manager, cluster_size=2, cluster_mode="multi-node")
    for session_id in (single, spread):
        view, final = await manager.sessions.destroy(lab.user, session_id)
        assert (view["status"], final) == ("TERMINATING", False)
        await manager.settle()
        assert await lab.status(session_id) == "TERMINATED"
        gang = await kernels(lab, session_id)
        assert {k.status for k in gang} == {"TERMINATED"}
        assert {k.id for k in gang} <= set(agents.destroyed)
    assert not agents.containers
    assert await nothing_occupied(lab)


async def test_destroying_a_queued_cluster_session_cancels_every_kernel(lab: Lab) -> None:
    cluster_lab(lab)
    manager = lab.manager()
    session_id = await lab.create(manager, cluster_size=4)
    view, final = await manager.sessions.destroy(lab.user, session_id)
    assert (view["status"], final) == ("CANCELLED", True)
    assert {k.status for k in await kernels(lab, session_id)} == {"CANCELLED"}
    assert await manager.core.scheduler.run_pass() == 0
    assert lab.agents.create_calls == 0


# -- what create refuses -----------------------------------------------------------------------------


async def test_create_refuses_a_cluster_too_large_or_that_no_agents_could_hold(lab: Lab) -> None:
    cluster_lab(lab)
    await add_agents(lab, ["node-2"])
    manager = lab.manager()
    with pytest.raises(ValidationError, match="cluster_size"):
        await lab.create(manager, cluster_size=MAX_CLUSTER_SIZE + 1)
    with pytest.raises(ValidationError, match="cluster_size"):
        await lab.create(manager, cluster_size=0)
    with pytest.raises(UnsatisfiableRequest, match="has no room for 9 kernels of this request on one node"):
        await lab.create(manager, cluster_size=9)  # 9 × 1 core on one agent of 8
    with pytest.raises(UnsatisfiableRequest, match="on 3 different nodes"):
        await lab.create(manager, cluster_size=3, cluster_mode="multi-node")  # two agents
    async with lab.sessionmaker() as db:
        assert (await db.scalars(select(Session.id))).all() == []
    # What fits is accepted: 8 × 1 core on one agent, 2 kernels on two agents.
    await lab.create(manager, cluster_size=8)
    await lab.create(manager, cluster_size=2, cluster_mode="multi-node")


async def test_the_scheduler_never_splits_a_gang_between_passes(lab: Lab) -> None:
    """A gang that fits only once a running session ends waits whole (nothing held), then starts whole."""
    cluster_lab(lab)
    manager = lab.manager()
    blocker = await running(lab, manager, resources={"cpu": "4", "mem": "1g"})
    gang = await lab.create(manager, cluster_size=3, resources={"cpu": "2", "mem": "1g"})
    assert await manager.core.scheduler.run_pass() == 0
    assert {(k.status, k.agent_id) for k in await kernels(lab, gang)} == {("PENDING", None)}
    assert Decimal((await occupied(lab))[AGENT_ID]["cpu"]) == 4
    async with lab.sessionmaker() as db:
        reason = str(await db.scalar(select(Session.status_reason).where(Session.id == gang)))
    assert reason.startswith("waiting for resources: group 'default' has no room for 3 kernels of")

    await manager.sessions.destroy(lab.user, blocker)
    await manager.settle()
    started = await placed(lab, manager, gang)
    assert {(k.status, k.agent_id) for k in started} == {("PREPARING", AGENT_ID)}
    assert Decimal((await occupied(lab))[AGENT_ID]["cpu"]) == 6


async def test_a_worker_done_before_main1_came_up_does_not_keep_the_session_preparing(lab: Lab) -> None:
    """A fast worker (its part done, exit 0) ends before main1's container is reported up: the session
    still goes RUNNING once main1 runs, then ends with main1."""
    cluster_lab(lab)
    manager = lab.manager()
    session_id = await lab.create(manager, cluster_size=2, **BATCH)
    main1, sub1 = await placed(lab, manager, session_id)
    assert await manager.core.kernel_events.running(sub1.id, "c-sub1", agent_id=AGENT_ID)
    await kernel_exits(lab, manager, sub1, 0)
    assert await lab.status(session_id) == "PREPARING"
    assert await manager.core.kernel_events.running(main1.id, "c-main1", agent_id=AGENT_ID)
    assert await lab.status(session_id) == "RUNNING"
    await kernel_exits(lab, manager, main1, 0)
    await manager.settle()
    sess = await session_row(lab, session_id)
    assert (sess.status, sess.exit_code) == ("TERMINATED", 0)
