"""How one kernel's end ends a cluster session (the session's other kernels still run).

- ``main1`` ends: the session ends, a batch session with main1's exit code.
- a worker (``sub1`` …) of a batch session ends with exit code 0: it has done its part; the session
  waits for main1.
- a worker fails (non-zero exit, killed, could not start) or any kernel of an interactive session ends:
  the session ends with a reason naming that kernel.

The session goes ``TERMINATING`` with that reason and its other kernels are stopped; once the last one
is gone it ends ``TERMINATED`` (``ERROR`` when a kernel could not start) with the reason, less the
"stopping" clause.
"""
from __future__ import annotations

from corral.common.cluster import kernel_name

CLUSTER_END_MARK = "cluster: "
STOPPING = "; stopping its other kernels"


def cluster_end_reason(cluster_idx: int, session_type: str, exit_code: int | None, reason: str, failed: bool
                       ) -> str | None:
    """Why the session ends now that kernel ``cluster_idx`` ended (None: it goes on without it)."""
    name = kernel_name(cluster_idx)
    if failed:
        return f"{CLUSTER_END_MARK}{name} {reason}{STOPPING}"
    batch = session_type == "batch" and exit_code is not None
    if cluster_idx == 0:
        if batch:
            outcome = "succeeded" if exit_code == 0 else "failed"
            return f"{CLUSTER_END_MARK}{name}'s batch command {outcome} with exit code {exit_code}{STOPPING}"
        return f"{CLUSTER_END_MARK}{name} ended: {reason}{STOPPING}"
    if batch and exit_code == 0:
        return None
    detail = f"exit code {exit_code}" if exit_code is not None else reason
    if reason.startswith("killed:"):
        detail = f"{reason} (exit code {exit_code})"
    return f"{CLUSTER_END_MARK}{name} failed: {detail}{STOPPING}"


def is_cluster_end(status_reason: str) -> bool:
    return status_reason.startswith(CLUSTER_END_MARK)


def final_reason(status_reason: str) -> str:
    """What the session says once every kernel is gone."""
    return status_reason.removeprefix(CLUSTER_END_MARK).removesuffix(STOPPING)
