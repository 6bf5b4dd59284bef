"""Queue policies: in which order a group's pending sessions are considered (DESIGN §5).

Each policy is a small class behind `QueuePolicy`: `start` with the group's pending sessions and a
`PolicyContext`, then `next` until it returns None, telling it after each session whether it was
placed (`on_placed`) or not (`on_skipped`), so orders that depend on what was given (DRF, fair-share)
are recomputed as the pass goes. `factors` explains a session's position (``corral queue``).
"""
from __future__ import annotations

from .base import PolicyContext, QueuePolicy, gpu_amount, usage_vector
from .registry import POLICY_NAMES, make_policy

__all__ = ["POLICY_NAMES", "PolicyContext", "QueuePolicy", "gpu_amount", "make_policy", "usage_vector"]
