"""How a pending session is known to hold the head-of-queue reservation: the reason the last pass gave
it says so, which every manager can read (the leader may change between passes)."""
from __future__ import annotations

HEAD_MARK = "head of the queue:"
# The start of the reason of a session that had running sessions preempted for it (and waits for them to
# stop): such sessions are considered first in the next passes, so what the victims free goes to them.
PREEMPT_WAIT_MARK = "waiting for preempted sessions "
