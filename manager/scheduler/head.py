"""How a pending session is known to hold the head-of-queue reservation: the reason the last pass gave
it says so, which every manager can read (the leader may change between passes)."""
from __future__ import annotations

HEAD_MARK = "head of the queue:"
