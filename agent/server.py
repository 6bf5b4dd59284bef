"""A running agent: container backend, kernel manager, RPC server, manager link."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from pathlib import Path
from typing import Any

from aiohttp import web

import corral.kernels
from corral.common.errors import ConfigError, CorralError
from corral.common.partial_start import undo_failed_start
from corral.common.gpu.topology import GpuTopology
from corral.common.version import VERSION

from .backend.base import ContainerBackend
from .config import AgentConfig
from .gpu_enforcement import GpuEnforcer, MpsDaemons, mps_root
from .kernels import KernelManager
from .manager_link import ManagerLink
from .resources import detect_capacity
from .service_rpc import open_service_connection
from .rpc import create_rpc_app

log = logging.getLogger(__name__)

IMAGE_LIST_TTL_S = 10.0


def kernels_package_dir() -> Path:
    return Path(corral.kernels.__file__).resolve().parent


class AgentServer:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.agent_id = config.id or f"{socket.gethostname()}-{config.rpc.port}"
        self.port = config.rpc.port
        self._runner: web.AppRunner | None = None
        self._images: list[dict[str, Any]] = []
        self._images_at = 0.0
        # What start() got running, undone in reverse by stop(): safe after a partial start.
        self._started = contextlib.AsyncExitStack()
        self._serving = False

    @property
    def address(self) -> str:
        return self.config.rpc.advertised_address or f"http://{self.config.rpc.host}:{self.port}"

    async def open_service_connection(
        self, kernel_id: str, name: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to a running kernel's service, for a manager in this same process (the embedded
        stack), which then relays its tunnels without this agent's websocket hop."""
        return await open_service_connection(self.kernels, kernel_id, name)

    def _make_backend(self) -> ContainerBackend:
        if self.config.backend == "docker":
            from .backend.docker_backend import DockerBackend

            return DockerBackend(self.config, self.agent_id, kernels_package_dir())
        from .backend.dummy import DummyBackend

        return DummyBackend(self.agent_id)

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException as exc:
            await undo_failed_start(self._started, exc)
            raise
        self._serving = True

    async def _start(self) -> None:
        config, started = self.config, self._started
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.gpu_topology, mock_cores = await self._discover_gpus()
        gpu_json = self.gpu_topology.to_json() if self.gpu_topology.devices else None
        self.capacity = detect_capacity(config.resources, gpu_json, mock_cores)
        self.backend = self._make_backend()
        started.push_async_callback(self.backend.close)
        await self.backend.start()
        self.link = ManagerLink(config.manager, config.id, self._heartbeat_payload, self._destroy_requested)
        started.push_async_callback(self.link.stop)
        self.kernels = KernelManager(
            config.data_dir, self.backend, self.capacity, self.link, self._gpu_enforcer(),
            kernel_user=(config.docker.kernel_uid, config.docker.kernel_gid),
        )
        started.push_async_callback(self.kernels.close)
        if await self.backend.available():
            await self.kernels.reattach()
        self.backend.watch_exits(self.kernels.on_container_exit)
        app = create_rpc_app(self.kernels, config.manager.cluster_secret)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        started.push_async_callback(self._runner.cleanup)
        site = web.TCPSite(self._runner, config.rpc.host, config.rpc.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            # Register (or re-register a new address) before anything else happens.
            await self.link.heartbeat_now()
        except Exception as exc:  # noqa: BLE001 - the heartbeat loop keeps trying
            log.warning("manager at %s not reachable yet (%s); will keep trying", config.manager.url, exc)
        self.link.start()
        log.info(
            "agent %s serving RPC on %s with %s (backend %s)",
            self.agent_id, self.address, self.capacity.slots(), config.backend,
        )

    async def _discover_gpus(self) -> tuple[GpuTopology, dict[int, int] | None]:
        """The node's GPUs, and in mock mode the CPU cores (core -> NUMA node) the topology names.

        A mock node advertises those cores — so CPU placement next to the
        GPUs is exercised as on the real machine — and records which it
        allocated, while only a CPU quota is enforced on this host.
        """
        gpu = self.config.gpu
        if gpu.plugin == "none":
            return GpuTopology(), None
        from .gpu.plugin import load_gpu_plugin

        if gpu.plugin == "mock":
            # The agent id seeds the mock UUIDs: two agents sharing a file get different GPUs.
            plugin = load_gpu_plugin("mock", topology=gpu.topology, uuid_seed=self.agent_id)
        else:
            plugin = load_gpu_plugin(gpu.plugin)
        try:
            topology = await plugin.discover()
        except CorralError:
            raise
        except Exception as exc:  # noqa: BLE001 - any plugin failure stops the start with one readable line
            log.debug("GPU discovery failed", exc_info=True)
            raise ConfigError(f"GPU plugin {gpu.plugin!r} failed: {type(exc).__name__}: {exc}") from exc
        if not topology.devices:
            return topology, None
        mock_cores = None
        if gpu.plugin == "mock":
            numa_of_core = topology.numa_of_core()
            mock_cores = {core: numa_of_core.get(core, 0) for core in topology.cpu_cores()}
        log.info(
            "GPUs (%s plugin, sharing %s): %s", gpu.plugin, gpu.sharing,
            ", ".join(f"{d.index}:{d.model}:{d.uuid}" for d in topology.devices),
        )
        return topology, mock_cores

    def _gpu_enforcer(self) -> GpuEnforcer | None:
        """Checks each GPU kernel against this node (and readies MPS) before it starts."""
        if not self.gpu_topology.devices or self.config.backend != "docker":
            return None
        gpu = self.config.gpu
        mps = MpsDaemons(mps_root(self.config), gpu.mps_control) if gpu.sharing == "mps" and gpu.plugin == "cuda" else None
        return GpuEnforcer(self.gpu_topology, gpu, mps)

    async def _heartbeat_payload(self) -> dict[str, Any]:
        if time.monotonic() - self._images_at > IMAGE_LIST_TTL_S:
            try:
                self._images = await self.backend.list_images()
                self._images_at = time.monotonic()
                await self.kernels.sweep_strays()  # same cadence: a cheap list call now and then
            except Exception as exc:  # noqa: BLE001 - report what we had
                log.debug("image listing or stray sweep failed: %s", exc)
        return {
            "agent_id": self.agent_id,
            "address": self.address,
            "resource_group": self.config.resource_group,
            "version": VERSION,
            "capacity": self.capacity.to_json(),
            "images": self._images,
            "kernels": self.kernels.report(),
            # Running kernels hold more than this node has now (it restarted smaller): shown by `corral admin agents`.
            "overcommitted": self.kernels.overcommit_notes(),
        }

    async def _destroy_requested(self, kernel_ids: list[str]) -> None:
        await self.kernels.destroy_many(kernel_ids)

    async def stop(self) -> None:
        """Stop serving; running containers stay up and are re-attached on the next start.

        Undoes only what start() got running, so it is safe after a failed or
        partial start, and a second call does nothing.
        """
        was_serving, self._serving = self._serving, False
        await self._started.aclose()
        if not was_serving:
            return
        left = len(self.kernels.records)
        if left:
            log.info("agent %s stopped; %d kernel container(s) keep running and are re-attached on restart", self.agent_id, left)
        else:
            log.info("agent %s stopped", self.agent_id)

