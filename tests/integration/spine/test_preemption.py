"""Preemption on a real manager and a Docker agent: a low-priority batch session gives way to a
higher-priority one in a group with preemption on, goes back to the queue, and runs again afterwards."""
from __future__ import annotations

import pytest

from .cluster import LiveCluster

pytestmark = [pytest.mark.docker]


async def test_a_preempted_batch_session_goes_back_to_the_queue_and_runs_again(cluster: LiveCluster) -> None:
    admin = cluster.client()
    await admin.update_resource_group("default", preemption=True)
    low = await admin.create_session(name="low", type="batch", command=["sleep", "600"], priority=10,
                                     resources={"cpu": "3", "mem": "256m"})
    await admin.wait_for_status(low.id, {"RUNNING"}, timeout=60)
    first_kernel = (await admin.get_session(low.id)).raw["kernels"][0]["id"]

    high = await admin.create_session(name="high", type="batch", command=["sleep", "3"], priority=80,
                                      resources={"cpu": "3", "mem": "256m"})
    await admin.wait_for_status(high.id, {"RUNNING"}, timeout=60)
    history = [(h["status"], h["reason"]) for h in (await admin.get_session(low.id)).raw["status_history"]]
    assert [s for s, _ in history][:6] == ["PENDING", "SCHEDULED", "PREPARING", "RUNNING", "TERMINATING", "PENDING"]
    assert history[4][1] == f"preempted by session {high.id} (priority 80 > 10)"
    assert history[5][1] == f"preempted by session {high.id} (priority 80 > 10); back in the queue"

    done = await admin.wait_for_status(high.id, {"TERMINATED"}, timeout=60)
    assert done.raw["exit_code"] == 0
    again = await admin.wait_for_status(low.id, {"RUNNING"}, timeout=60)
    assert again.raw["kernels"][0]["id"] != first_kernel
    assert [h["status"] for h in again.raw["status_history"]][-4:] == ["PENDING", "SCHEDULED", "PREPARING", "RUNNING"]
    await admin.destroy_session(low.id)
    await admin.wait_for_status(low.id, {"TERMINATED"}, timeout=30)
