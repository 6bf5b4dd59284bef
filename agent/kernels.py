"""Kernel lifecycle on this node: create, watch, destroy, re-attach after a restart."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

from corral.common.allocator import NodeState
from corral.common.errors import BackendError, Conflict, CorralError, NotFound
from corral.common.node_resources import Allocation, NodeCapacity
from corral.common.slots import format_size
from corral.kernels import contract

from . import cluster_files, runner_client, ssh_material
from .backend.base import ContainerBackend
from .kernel_spec import KernelRecord, KernelSpec
from .kernel_tombstones import DESTROYED_BEFORE_CREATED, KernelTombstones
from .manager_link import ManagerLink
from .progress_throttle import ProgressThrottle

if TYPE_CHECKING:
    from .gpu_enforcement import GpuEnforcer

log = logging.getLogger(__name__)

RUNNER_READY_TIMEOUT_S = 60.0
CLOSE_WAIT_FOR_DOCKER_S = 30.0


class KernelManager:
    def __init__(
        self,
        data_dir: Path,
        backend: ContainerBackend,
        capacity: NodeCapacity,
        link: ManagerLink,
        gpu_enforcer: "GpuEnforcer | None" = None,
        kernel_user: tuple[int, int] = (1000, 1000),
    ) -> None:
        self.kernel_user = kernel_user  # the uid:gid containers run as (owns the host key)
        self.kernels_root = data_dir / "k"
        self.gpu_enforcer = gpu_enforcer
        self.backend = backend
        self.state = NodeState(capacity)
        self.link = link
        self.records: dict[str, KernelRecord] = {}
        self._starting: dict[str, asyncio.Task[None]] = {}
        # Set by the engine's exit event for a container whose kernel is still starting.
        self._exited_while_starting: dict[str, asyncio.Event] = {}
        self._destroying: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._stray_candidates: set[str] = set()
        self.tombstones = KernelTombstones()
        self.forget_hooks: list[Callable[[Path], None]] = []  # told each kernel directory that goes away
        # Set by reattach(): what running kernels hold beyond this node's capacity (see _shrink_notes).
        self.overcommit: list[str] = []
        self._missing_gpus: dict[str, str] = {}  # kernel id -> note

    # Start-up: re-attach ----------------------------------------------------------------
    async def reattach(self) -> None:
        """Adopt this agent's containers from before a restart; settle the ones that ended meanwhile."""
        self.kernels_root.mkdir(parents=True, exist_ok=True)
        for found in await self.backend.existing_kernels():
            allocation = Allocation.from_json(found.allocation)
            if found.running:
                allocation = self._bookable(found.kernel_id, allocation)
                self.records[found.kernel_id] = KernelRecord(
                    found.kernel_id, found.session_id, found.kernel_dir, allocation, "running", found.container_id,
                    ssh_host_key=ssh_material.read_host_key(found.kernel_dir),
                )
                self.state.add(allocation)
                log.info("re-attached kernel %s (container %s)", found.kernel_id, found.container_id[:12])
            else:
                exit_code, logs = await self.backend.stop_kernel(found.container_id)
                _remove_dir(found.kernel_dir)
                self.tombstones.bury(found.kernel_id, "already ended (its container exited while the agent was down)")
                note = self._exit_note(found.container_id)
                self.link.send_event(
                    "kernel.terminated", found.kernel_id, exit_code=found.exit_code if exit_code is None else exit_code,
                    reason=f"{note} while the agent was down" if note else "container exited while the agent was down",
                    logs=logs,
                )
                log.info("kernel %s ended while the agent was down (exit %s)", found.kernel_id, found.exit_code)

        self.overcommit = self._shrink_notes()
        for line in self.overcommit:
            log.warning("node resources shrank below what re-attached kernels hold: %s", line)
        await self._sweep_session_networks()  # of sessions that ended while the agent was down

    def _bookable(self, kernel_id: str, allocation: Allocation) -> Allocation:
        """The part of a re-attached kernel's allocation this node can still book.

        GPUs it holds that this node no longer has (restarted without its GPU
        plugin or with a smaller topology) cannot be booked; they are noted
        and the kernel is tracked without them.
        """
        if not allocation.gpu_shares:
            return allocation
        gpus = self.state.gpus
        if gpus is not None and gpus.can_take(allocation.gpu_shares):
            return allocation
        held = ", ".join(f"{i}:{share}" for i, share in sorted(allocation.gpu_shares.items()))
        self._missing_gpus[kernel_id] = f"kernel {kernel_id[:8]} holds GPU(s) {held} this node does not have now"
        return dataclasses.replace(allocation, gpu_shares={}, gpu_whole=False)

    def overcommit_notes(self) -> list[str]:
        """What running kernels hold beyond this node's capacity now (for the heartbeat); [] when nothing."""
        return self._shrink_notes() if self.overcommit else []

    def _shrink_notes(self) -> list[str]:
        """One line per resource that running kernels hold beyond this node's current capacity."""
        notes = [note for kernel_id, note in self._missing_gpus.items() if kernel_id in self.records]
        capacity = self.state.capacity
        cores = len(capacity.cpu_cores)
        if self.state.cpu_used > cores:
            notes.append(f"cpu {self.state.cpu_used} held, {cores} available")
        if self.state.mem_used > capacity.mem:
            notes.append(f"mem {format_size(self.state.mem_used)} held, {format_size(capacity.mem)} available")
        gone = sorted(self.state.pinned_cores - set(capacity.cpu_cores))
        if gone:
            notes.append(f"CPU core(s) {','.join(map(str, gone))} pinned by kernels but not on this node now")
        return notes

    # Create -------------------------------------------------------------------------------
    async def create(self, spec: KernelSpec) -> KernelRecord:
        existing = self.records.get(spec.kernel_id)
        if existing is not None:
            return existing  # the manager retried: creation is idempotent
        self.tombstones.refuse_create(spec.kernel_id)
        allocation = spec.resources
        if not self.state.can_take(allocation):
            raise Conflict(
                f"allocation {allocation.slots()} does not fit on this agent any more (free: {self.state.free_slots()})"
            )
        kernel_dir = self.kernels_root / spec.kernel_id.replace("-", "")[:12]
        record = KernelRecord(spec.kernel_id, spec.session_id, kernel_dir, allocation)
        self.records[spec.kernel_id] = record
        self.state.add(allocation)
        exited = self._exited_while_starting[spec.kernel_id] = asyncio.Event()
        task = asyncio.get_running_loop().create_task(
            self._start(spec, record, exited), name=f"start-{spec.kernel_id[:8]}"
        )
        self._starting[spec.kernel_id] = task
        task.add_done_callback(lambda _: self._started(spec.kernel_id))
        return record

    def _started(self, kernel_id: str) -> None:
        self._starting.pop(kernel_id, None)
        self._exited_while_starting.pop(kernel_id, None)

    async def _start(self, spec: KernelSpec, record: KernelRecord, exited: asyncio.Event) -> None:
        try:
            check_vfolder_mounts(spec)
            socket_path = contract.prepare_runner_dir(record.kernel_dir)
            if self.backend.has_runner:
                self._write_ssh_material(spec, record)
            if self.gpu_enforcer is not None and spec.resources.gpu_shares:
                spec = await self.gpu_enforcer.prepare(spec)
            progress = ProgressThrottle(
                lambda message: self.link.send_event("kernel.progress", spec.kernel_id, reason=message)
            )
            record.creating = asyncio.ensure_future(self.backend.start_kernel(spec, record.kernel_dir, progress))
            record.container_id = await asyncio.shield(record.creating)
            progress.flush()

            async def alive() -> bool:
                return await self.backend.is_running(record.container_id or "")

            if self.backend.has_runner:
                pong = await runner_client.wait_until_ready(socket_path, RUNNER_READY_TIMEOUT_S, alive, exited)
                record.ssh_user = str(pong.get("user") or "")
        except asyncio.CancelledError:
            raise
        except runner_client.ContainerExitedEarly:
            if spec.type != "batch":
                await self._fail_start(spec, record, "the container exited before its runner came up")
                return
            # A batch command may finish before we ever saw the runner: that is a run, not a failure.
            exited.set()
        except Exception as exc:  # noqa: BLE001 - report any failure with its reason
            reason = exc.detail if isinstance(exc, CorralError) else f"{type(exc).__name__}: {exc}"
            await self._fail_start(spec, record, reason)
            return
        record.status = "running"
        self._started(spec.kernel_id)  # from here on, an exit event goes to on_container_exit
        log.info("kernel %s running in container %s", spec.kernel_id, (record.container_id or "")[:12])
        self.link.send_event(
            "kernel.running", spec.kernel_id, container_id=record.container_id,
            ssh_host_key=record.ssh_host_key or None, ssh_user=record.ssh_user or None,
        )
        if exited.is_set():  # it ran, and already ended: settle it like any other exit
            await self.on_container_exit(spec.kernel_id, None)

    def _write_ssh_material(self, spec: KernelSpec, record: KernelRecord) -> None:
        docker = self.kernel_user
        if spec.cluster is not None:  # first: its session key joins the authorized keys below
            cluster_files.write_cluster_files(record.kernel_dir, spec.cluster, spec.resources, *docker)
        record.ssh_host_key = ssh_material.write_host_key(
            record.kernel_dir, docker[0], docker[1], f"corral-{spec.session_name or spec.session_id}"
        )
        ssh_material.write_authorized_keys(record.kernel_dir, spec.ssh_authorized_keys)

    def set_authorized_keys(self, kernel_id: str, keys: list[str]) -> None:
        """The owner's keys changed: the next ssh login sees the new list."""
        record = self.records.get(kernel_id)
        if record is None:
            raise NotFound(f"no kernel {kernel_id} on this agent")
        ssh_material.write_authorized_keys(record.kernel_dir, keys)

    async def _fail_start(self, spec: KernelSpec, record: KernelRecord, reason: str) -> None:
        logs = ""
        if record.container_id:
            try:
                _, logs = await self.backend.stop_kernel(record.container_id)
            except Exception:  # noqa: BLE001 - the reason we already have matters more
                pass
            if logs.strip():
                reason = f"{reason}; container output: {logs.strip()[-500:]}"
        self._forget(record, "already ended (it failed to start)")
        await self._release_session(record.session_id)
        log.warning("kernel %s failed to start: %s", spec.kernel_id, reason)
        self.link.send_event("kernel.failed", spec.kernel_id, reason=reason, logs=logs)

    # Destroy --------------------------------------------------------------------------------
    async def destroy(self, kernel_id: str, reason: str) -> dict[str, Any]:
        """Stop and remove a kernel; concurrent calls for one kernel share one teardown."""
        in_flight = self._destroying.get(kernel_id)
        if in_flight is not None:
            return await asyncio.shield(in_flight)
        record = self.records.get(kernel_id)
        if record is None:
            # Perhaps its create is still on the way: make sure it never starts.
            self.tombstones.bury(kernel_id, DESTROYED_BEFORE_CREATED)
            raise NotFound(f"no kernel {kernel_id} on this agent")
        task = asyncio.get_running_loop().create_task(self._teardown(record, reason))
        self._destroying[kernel_id] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._destroying.pop(kernel_id, None)

    async def _teardown(self, record: KernelRecord, reason: str) -> dict[str, Any]:
        # A runner still starting up may not handle SIGTERM yet (as PID 1 it would ignore it):
        # a kernel that never ran has nothing to shut down gracefully.
        grace_s = 3 if record.status == "running" else 0
        record.status = "terminating"
        starting = self._starting.get(record.kernel_id)
        if starting is not None:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        if record.container_id is None and record.creating is not None:
            # Cancelled while Docker was creating the container: let that call finish to learn its id.
            done = await asyncio.gather(record.creating, return_exceptions=True)
            record.container_id = done[0] if isinstance(done[0], str) else None
        exit_code, logs = (None, "")
        if record.container_id:
            exit_code, logs = await self.backend.stop_kernel(record.container_id, grace_s)
        self._forget(record, "was already destroyed")
        await self._release_session(record.session_id)
        log.info("kernel %s destroyed (%s)", record.kernel_id, reason)
        return {"kernel_id": record.kernel_id, "exit_code": exit_code, "logs": logs}

    async def destroy_many(self, kernel_ids: list[str]) -> None:
        for kernel_id in kernel_ids:
            try:
                result = await self.destroy(kernel_id, "the manager asked (orphaned or terminating)")
            except NotFound:
                continue
            except Exception as exc:  # noqa: BLE001
                log.warning("could not destroy kernel %s: %s", kernel_id, exc)
                continue
            self.link.send_event(
                "kernel.terminated", kernel_id, exit_code=result["exit_code"], reason="destroyed", logs=result["logs"]
            )

    async def on_container_exit(self, kernel_id: str, exit_code: int | None) -> None:
        """A container ended by itself (batch command done, crash, OOM kill)."""
        exited_while_starting = self._exited_while_starting.get(kernel_id)
        if exited_while_starting is not None:
            exited_while_starting.set()  # its start settles it
            return
        record = self.records.get(kernel_id)
        if record is None or record.status == "terminating" or kernel_id in self._starting:
            return
        record.status = "terminating"
        logs = ""
        reason = "container exited"
        if record.container_id:
            try:
                code, logs = await self.backend.stop_kernel(record.container_id)
                exit_code = exit_code if exit_code is not None else code
                reason = self._exit_note(record.container_id) or reason
            except Exception as exc:  # noqa: BLE001
                log.warning("could not clean up container of kernel %s: %s", kernel_id, exc)
        self._forget(record, "already ended (its container exited)")
        await self._release_session(record.session_id)
        log.info("kernel %s exited with code %s (%s)", kernel_id, exit_code, reason)
        self.link.send_event("kernel.terminated", kernel_id, exit_code=exit_code, reason=reason, logs=logs)

    def _exit_note(self, container_id: str) -> str | None:
        """What the backend learnt about a removed container's end beyond its code (an OOM kill)."""
        take = getattr(self.backend, "take_exit_note", None)
        return take(container_id) if take is not None else None

    async def sweep_strays(self) -> list[str]:
        """Remove this agent's containers that belong to no kernel it knows (e.g. created
        while their kernel was being destroyed). A container must look stray on two
        sweeps in a row, so one still being set up is never touched, unless its kernel
        had ended before the sweep began (a kernel is forgotten only after its container
        was removed, so one still listed then is left over)."""
        sweep_started = self.tombstones.now()
        found = {k.container_id: k for k in await self.backend.existing_kernels()}
        known = {r.container_id for r in self.records.values() if r.container_id}
        strays = {cid for cid, k in found.items() if cid not in known and k.kernel_id not in self.records}
        doomed = {cid for cid in strays if self.tombstones.buried_before(found[cid].kernel_id, sweep_started)}
        removed = []
        for container_id in strays & (self._stray_candidates | doomed):
            await self.backend.stop_kernel(container_id)
            _remove_dir(found[container_id].kernel_dir)
            removed.append(container_id)
            log.warning("removed stray container %s (kernel %s)", container_id[:12], found[container_id].kernel_id)
        self._stray_candidates = strays - set(removed)
        await self._sweep_session_networks()
        return removed

    # Cluster sessions' networks (backends that make them have these optional methods) ---------------
    def _has_kernels_of(self, session_id: str) -> bool:
        return any(record.session_id == session_id for record in self.records.values())

    async def _release_session(self, session_id: str) -> None:
        """After a kernel is forgotten: if it was its session's last here, the session's network goes."""
        release = getattr(self.backend, "release_session_network", None)
        if release is None or self._has_kernels_of(session_id):
            return
        try:
            await release(session_id)
        except Exception as exc:  # noqa: BLE001 - a leftover network is swept later
            log.warning("could not release the network of session %s: %s", session_id, exc)

    async def _sweep_session_networks(self) -> None:
        """Removes the networks of sessions with no kernel left on this agent."""
        sweep = getattr(self.backend, "sweep_session_networks", None)
        if sweep is None:
            return
        try:
            await sweep(self._has_kernels_of)
        except Exception as exc:  # noqa: BLE001 - tried again on the next sweep
            log.warning("could not sweep the session networks: %s", exc)

    def _forget(self, record: KernelRecord, how_it_ended: str) -> None:
        if self.records.pop(record.kernel_id, None) is not None:
            self.state.release(record.allocation)
        self.tombstones.bury(record.kernel_id, how_it_ended)
        for hook in self.forget_hooks:
            hook(record.kernel_dir)
        _remove_dir(record.kernel_dir)

    # Use ------------------------------------------------------------------------------------
    def running(self, kernel_id: str) -> KernelRecord:
        record = self.records.get(kernel_id)
        if record is None:
            raise NotFound(f"no kernel {kernel_id} on this agent")
        if record.status != "running":
            raise Conflict(f"kernel {kernel_id} is {record.status}")
        return record

    def runner_socket(self, kernel_id: str) -> Path:
        """The running kernel's runner socket (for terminals and tunnels)."""
        record = self.running(kernel_id)
        if not self.backend.has_runner:
            raise Conflict(f"kernel {kernel_id} has no runner to open a terminal in (this backend only simulates containers)")
        return contract.runner_socket_path(record.kernel_dir)

    def execute(self, kernel_id: str, code: str) -> AsyncIterator[dict[str, Any]]:
        record = self.running(kernel_id)
        if not self.backend.has_runner:
            return _no_runner_result()
        return runner_client.execute_events(contract.runner_socket_path(record.kernel_dir), code)

    async def interrupt(self, kernel_id: str) -> bool:
        """SIGINT to the running kernel's execute, if any (its runner kills the code if that is
        ignored); the execute then ends with status ``interrupted``. False when nothing ran."""
        record = self.running(kernel_id)
        if not self.backend.has_runner:
            return False  # nothing ever runs for long without a runner
        try:
            client = await runner_client.RunnerClient.connect(contract.runner_socket_path(record.kernel_dir), timeout=5)
        except runner_client.RunnerUnavailable as exc:
            raise BackendError(f"cannot reach the kernel's runner: {exc}") from None
        try:
            answer = await asyncio.wait_for(client.interrupt(), runner_client.PING_TIMEOUT_S)
        except (runner_client.RunnerUnavailable, TimeoutError) as exc:
            raise BackendError(f"the kernel's runner did not take the interrupt: {exc!r}") from None
        finally:
            await client.close()
        return bool(answer.get("interrupted"))

    def follow_logs(self, kernel_id: str, tail: str = "all") -> AsyncIterator[str]:
        """The container's output, then new output live until the container ends (NotFound at once if
        the kernel is not here)."""
        record = self.records.get(kernel_id)
        if record is None or not record.container_id:
            raise NotFound(f"no kernel {kernel_id} on this agent")
        follow = getattr(self.backend, "follow_logs", None)
        if follow is None:
            return _once(self.backend.logs(record.container_id))
        return follow(record.container_id, tail)

    async def logs(self, kernel_id: str) -> str:
        record = self.records.get(kernel_id)
        if record is None or not record.container_id:
            raise NotFound(f"no kernel {kernel_id} on this agent")
        return await self.backend.logs(record.container_id)

    def report(self) -> list[dict[str, Any]]:
        return [r.report() for r in self.records.values()]

    async def close(self) -> None:
        for task in list(self._starting.values()):
            task.cancel()
        await asyncio.gather(*self._starting.values(), return_exceptions=True)
        # Let Docker calls already under way finish, so a container is never created after we
        # stopped looking; the next start re-attaches or settles it like any other.
        creating = [r.creating for r in self.records.values() if r.creating is not None and not r.creating.done()]
        if creating:
            await asyncio.wait(creating, timeout=CLOSE_WAIT_FOR_DOCKER_S)


def _remove_dir(path: Path) -> None:
    if path and str(path) not in ("", "/", "."):
        shutil.rmtree(path, ignore_errors=True)


async def _once(text: Awaitable[str]) -> AsyncIterator[str]:
    yield await text


async def _no_runner_result() -> AsyncIterator[dict[str, Any]]:
    yield {"op": "result", "status": "ok", "exit_code": 0, "error": None}


def check_vfolder_mounts(spec: KernelSpec) -> None:
    """Refuse to start rather than let Docker create an empty root-owned directory
    where a vfolder should be (a volume not mounted on this node, say)."""
    for mount in spec.mounts:
        if not os.path.isdir(mount.host_path):
            raise BackendError(
                f"vfolder {mount.name}: {mount.host_path} is not a directory on this node "
                "(is the storage volume mounted here?)"
            )
