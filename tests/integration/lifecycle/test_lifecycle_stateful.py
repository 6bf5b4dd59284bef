"""Random sequences of creates, destroys, scheduler passes, agent events, outages and manager
crashes, driven through the real lifecycle services on SQLite. Whatever the order:

- a session never leaves a terminal state, and every step of its history is a move the
  transition table allows;
- once everything is destroyed and the agent has heartbeated, no container is left.
"""
from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from corral.common.errors import Conflict
from corral.common.session_status import TERMINAL, SessionStatus
from corral.manager.agent_registry import Heartbeat, ReportedKernel
from corral.manager.db.models import Agent
from corral.manager.lifecycle.kernel_events import ON_AGENT
from corral.manager.lifecycle.transitions import SESSION_MOVES

from .harness import AGENT_ADDRESS, AGENT_ID, Lab, Manager, open_lab


class LifecycleMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = tempfile.TemporaryDirectory(prefix="lifecycle-")
        self.sessions: list[str] = []
        self.ended: dict[str, str] = {}

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    @initialize()
    def open(self) -> None:
        db_url = f"sqlite:///{Path(self.dir.name) / 'corral.db'}"
        self.lab: Lab = self.run(open_lab(db_url, agents={"heartbeat_timeout_s": 0.001},
                                          lifecycle={"prepare_retry_s": 0.01, "terminate_retry_s": 0.01}))
        self.manager: Manager = self.lab.manager()

    @rule(cpu=st.sampled_from(["1", "2", "6"]))
    def create(self, cpu: str) -> None:
        self.sessions.append(self.run(self.lab.create(self.manager, resources={"cpu": cpu, "mem": "64m"})))

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def destroy(self, data: st.DataObject) -> None:
        session_id = data.draw(st.sampled_from(self.sessions))
        try:
            view, final = self.run(self.manager.sessions.destroy(self.lab.user, session_id))
        except Conflict:
            return
        # Final: cancelled now, or it had already ended (destroy is idempotent); else it is terminating.
        if final:
            assert view["status"] in ("CANCELLED", "TERMINATED", "ERROR")
        else:
            assert view["status"] == "TERMINATING"

    @rule()
    def schedule(self) -> None:
        self.run(self.manager.core.scheduler.run_pass())
        self.run(self.manager.settle())

    @rule()
    def agent_reports_running(self) -> None:
        self.run(self.lab.report_running(self.manager))

    @precondition(lambda self: self.lab.agents.containers)
    @rule(data=st.data(), code=st.sampled_from([0, 1, 137]))
    def container_exits(self, data: st.DataObject, code: int) -> None:
        kernel_id = data.draw(st.sampled_from(sorted(self.lab.agents.containers)))
        del self.lab.agents.containers[kernel_id]
        self.run(self.manager.core.kernel_events.ended(
            kernel_id, code, "container exited", None, agent_id=AGENT_ID, only_from=ON_AGENT
        ))

    @rule()
    def toggle_outage(self) -> None:
        self.lab.agents.unreachable = not self.lab.agents.unreachable

    @rule()
    def toggle_lost_replies(self) -> None:
        self.lab.agents.replies_lost = not self.lab.agents.replies_lost

    @rule()
    def heartbeat(self) -> None:
        self.run(self.heartbeat_and_obey())

    @rule()
    def manager_crashes_and_another_takes_over(self) -> None:
        self.run(self.manager.crash())
        self.manager = self.lab.manager(manager_id=f"manager-{len(self.sessions)}")
        self.run(self.manager.core.recovery.run_once(just_took_lead=True))
        self.run(self.manager.settle())

    @rule()
    def recovery_pass(self) -> None:
        self.run(self.manager.core.recovery.run_once())
        self.run(self.manager.settle())

    async def heartbeat_and_obey(self) -> None:
        if self.lab.agents.unreachable:
            return  # an unreachable agent does not reach the manager either
        async with self.lab.sessionmaker() as db:
            agent = await db.get(Agent, AGENT_ID)
            assert agent is not None
            capacity = agent.capacity
        reported = [
            ReportedKernel(kernel_id=kid, session_id=spec["session_id"], status="running")
            for kid, spec in self.lab.agents.containers.items()
        ]
        answer = await self.manager.core.registry.heartbeat(
            Heartbeat(agent_id=AGENT_ID, address=AGENT_ADDRESS, capacity=capacity, kernels=reported)
        )
        for kernel_id in answer["destroy"]:
            self.lab.agents.containers.pop(kernel_id, None)
        await self.manager.settle()

    @invariant()
    def terminal_states_are_final_and_histories_follow_the_table(self) -> None:
        for session_id in getattr(self, "sessions", []):
            history = self.run(self.lab.history(session_id))
            assert history[0] == SessionStatus.PENDING
            for before, after in zip(history, history[1:]):
                assert before in SESSION_MOVES[SessionStatus(after)], f"{before} → {after} in {history}"
            status = self.run(self.lab.status(session_id))
            if session_id in self.ended:
                assert status == self.ended[session_id], f"{session_id} left {self.ended[session_id]} for {status}"
            elif status in TERMINAL:
                self.ended[session_id] = status

    def teardown(self) -> None:
        if hasattr(self, "lab"):
            try:
                self.run(self.destroy_everything_and_check_nothing_is_left())
            finally:
                self.run(self.manager.crash())
                self.run(self.lab.close())
        self.loop.close()
        self.dir.cleanup()

    async def destroy_everything_and_check_nothing_is_left(self) -> None:
        lab = self.lab
        lab.agents.unreachable = lab.agents.replies_lost = False
        for _ in range(6):
            for session_id in self.sessions:
                try:
                    await self.manager.sessions.destroy(lab.user, session_id)
                except Conflict:
                    pass
            await self.manager.settle()
            await self.manager.core.recovery.run_once(just_took_lead=True)
            await self.manager.settle()
            await self.heartbeat_and_obey()
            await lab.report_running(self.manager)
            statuses = [await lab.status(s) for s in self.sessions]
            if all(s in TERMINAL for s in statuses):
                break
        assert all(s in TERMINAL for s in statuses), statuses
        await self.heartbeat_and_obey()
        assert not lab.agents.containers, f"containers outlived their sessions: {sorted(lab.agents.containers)}"


LifecycleMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_lifecycle_state_machine = LifecycleMachine.TestCase
