"""Runs kernels as Docker containers through the Docker Engine API (aiodocker)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiodocker
from aiodocker.exceptions import DockerError

from corral.common.errors import BackendError, InvalidRequest, ServiceUnavailable
from corral.kernels.services import ServiceDeclarationError, definitions_to_env, parse_services

from ..cluster_network import SessionNetworks
from ..config import AgentConfig
from ..host_interfaces import interface_for_address
from ..kernel_spec import KernelSpec
from .base import (
    ENGINE_ERRORS, LABEL_AGENT, LABEL_ALLOCATION, LABEL_KERNEL, LABEL_KERNEL_DIR, LABEL_MANAGED, LABEL_SESSION,
    ExistingKernel, ExitCallback, ProgressCallback,
)
from .cluster_container import cluster_services, own_address
from .container_config import build_container_config
from .pull_progress import PullFailed, PullProgress, is_missing_image_error

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 5000
PULL_TIMEOUT_S = 3600.0  # a multi-GB image over a slow link; progress shows it is moving


class ImageNotFound(InvalidRequest):
    type_suffix = "image-not-found"
    title = "Image not found"


class DockerBackend:
    has_runner = True

    def __init__(self, config: AgentConfig, agent_id: str, kernels_pkg_dir: Path) -> None:
        self.config = config
        self.agent_id = agent_id
        self.kernels_pkg_dir = kernels_pkg_dir
        self._docker: aiodocker.Docker | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._stopping: set[str] = set()  # containers we are stopping ourselves
        self._exit_notes: dict[str, str] = {}  # container id -> why it ended, when Docker says more than a code
        self.networks = SessionNetworks(lambda: self.docker, agent_id)  # single-node cluster sessions'

    @property
    def docker(self) -> aiodocker.Docker:
        if self._docker is None:
            self._docker = aiodocker.Docker()
        return self._docker

    async def start(self) -> None:
        if not await self.available():
            log.error("Docker engine is not reachable; kernels cannot start until it is back")

    async def close(self) -> None:
        if self._watch_task:
            self._watch_task.cancel()
            await asyncio.gather(self._watch_task, return_exceptions=True)
        if self._docker is not None:
            await self._docker.close()

    async def available(self) -> bool:
        try:
            await self.docker.version()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not now"
            return False

    # Kernels ---------------------------------------------------------------------------
    async def start_kernel(
        self, spec: KernelSpec, kernel_dir: Path, progress: ProgressCallback | None = None
    ) -> str:
        image = await self._ensure_image(spec.image, progress)
        try:
            declared = parse_services((image.get("Config") or {}).get("Labels") or {})
        except ServiceDeclarationError as exc:
            raise BackendError(f"image {spec.image!r} declares its services wrongly: {exc}") from None
        cluster_interface = None
        if spec.cluster is not None:
            declared = cluster_services(declared, spec.cluster)
            if spec.cluster.mode == "multi-node":
                cluster_interface = await self._cluster_interface(own_address(spec.cluster))
        labels = {
            LABEL_MANAGED: "1",
            LABEL_AGENT: self.agent_id,
            LABEL_SESSION: spec.session_id,
            LABEL_KERNEL: spec.kernel_id,
            LABEL_KERNEL_DIR: str(kernel_dir),
            LABEL_ALLOCATION: json.dumps(spec.allocation, sort_keys=True),
        }
        config = build_container_config(
            spec, self.config, kernel_dir, self.kernels_pkg_dir, labels, definitions_to_env(declared), cluster_interface
        )
        # A node may advertise more cores than the host has (simulation, mock GPUs);
        # Docker refuses a quota above the host's CPU count.
        host = config["HostConfig"]
        host["NanoCpus"] = min(host["NanoCpus"], (os.cpu_count() or 1) * 1_000_000_000)
        name = f"corral-{spec.session_name}-{spec.kernel_id[:8]}"
        async with self._session_network(spec):
            try:
                container = await self.docker.containers.create(config, name=name)
            except DockerError as exc:
                raise self._translate(exc, f"creating the container for image {spec.image!r}") from None
            except ENGINE_ERRORS as exc:
                raise ServiceUnavailable(f"Docker engine unavailable: {exc}") from None
            try:
                await container.start()
            except DockerError as exc:
                await self._remove_quietly(container.id)
                raise self._translate(exc, "starting the container") from None
        return container.id

    def _session_network(self, spec: KernelSpec) -> AbstractAsyncContextManager[object]:
        """A single-node cluster kernel's container is made and started holding its session's network."""
        if spec.cluster is None or spec.cluster.mode != "single-node":
            return nullcontext()
        return self.networks.joined(spec.session_id)

    async def _cluster_interface(self, address: str) -> str | None:
        """[cluster] interface, else the one carrying the kernel's own peer address (None: not found)."""
        if self.config.cluster.interface:
            return self.config.cluster.interface
        found = await interface_for_address(address)
        if found is None:
            log.warning(
                "no network interface on this node carries %s (the kernel's cluster address): "
                "GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME are left unset; set [cluster] interface", address,
            )
        return found

    # Cluster sessions' networks -----------------------------------------------------------------
    async def release_session_network(self, session_id: str) -> None:
        """The session has no kernel on this agent any more: its network (if any) goes."""
        await self.networks.release(session_id)

    async def sweep_session_networks(self, wanted: Callable[[str], bool]) -> list[str]:
        """Removes the networks of this agent's sessions that ``wanted`` says have no kernel here."""
        return await self.networks.sweep(wanted)

    async def stop_kernel(self, container_id: str, grace_s: int = 3) -> tuple[int | None, str]:
        self._stopping.add(container_id)
        try:
            container = self.docker.containers.container(container_id)
            try:
                await container.stop(t=grace_s)
            except DockerError as exc:
                if exc.status == 404:
                    return None, ""
                if exc.status != 304:  # 304: already stopped
                    raise self._translate(exc, "stopping the container") from None
            info = await container.show()
            exit_code = info["State"].get("ExitCode")
            note = exit_note_from_inspect(info)
            if note:
                self._exit_notes[container_id] = note
            logs = await self.logs(container_id)
            await self._remove_quietly(container_id)
            return exit_code, logs
        except ENGINE_ERRORS as exc:
            raise ServiceUnavailable(f"Docker engine unavailable: {exc}") from None
        finally:
            self._stopping.discard(container_id)

    async def is_running(self, container_id: str) -> bool:
        try:
            info = await self.docker.containers.container(container_id).show()
        except DockerError:
            return False
        return bool(info["State"].get("Running"))

    async def logs(self, container_id: str) -> str:
        try:
            lines = await self.docker.containers.container(container_id).log(
                stdout=True, stderr=True, tail=LOG_TAIL_LINES
            )
        except DockerError as exc:
            if exc.status in (404, 409):  # gone, or being removed: nothing more to read
                return ""
            raise self._translate(exc, "reading logs") from None
        return "".join(lines)

    def take_exit_note(self, container_id: str) -> str | None:
        """Why a container that ``stop_kernel`` removed had ended, if more than its code says
        (``killed: out of memory (limit 512 MiB)``); asked once, then forgotten."""
        return self._exit_notes.pop(container_id, None)

    async def follow_logs(self, container_id: str, tail: str = "all") -> AsyncIterator[str]:
        """The container's output (the last ``tail`` lines first), then new output as it comes,
        until the container ends or is removed."""
        try:
            async for chunk in self.docker.containers.container(container_id).log(
                stdout=True, stderr=True, follow=True, tail=tail
            ):
                yield chunk
        except DockerError as exc:
            if exc.status in (404, 409):  # gone, or being removed: nothing more to read
                return
            raise self._translate(exc, "following logs") from None
        except ENGINE_ERRORS as exc:
            raise ServiceUnavailable(f"Docker engine unavailable: {exc}") from None

    async def existing_kernels(self) -> list[ExistingKernel]:
        """This agent's containers, from one list call; only exited ones are inspected (for their code)."""
        filters = json.dumps({"label": [f"{LABEL_AGENT}={self.agent_id}"]})
        found = []
        for container in await self.docker.containers.list(all=True, filters=filters):
            labels = container["Labels"] or {}
            running = container["State"] == "running"
            exit_code = None
            if not running:
                try:
                    exit_code = (await container.show())["State"].get("ExitCode")
                except DockerError:
                    continue  # removed meanwhile
            found.append(
                ExistingKernel(
                    kernel_id=labels[LABEL_KERNEL],
                    session_id=labels.get(LABEL_SESSION, ""),
                    container_id=container.id,
                    kernel_dir=Path(labels.get(LABEL_KERNEL_DIR, "")),
                    allocation=json.loads(labels.get(LABEL_ALLOCATION, "{}")),
                    running=running,
                    exit_code=exit_code,
                )
            )
        return found

    async def list_images(self) -> list[dict[str, Any]]:
        images = []
        for image in await self.docker.images.list():
            for tag in image.get("RepoTags") or []:
                if tag == "<none>:<none>":
                    continue
                images.append(
                    {"name": tag, "image_id": image["Id"], "size": image.get("Size"), "labels": image.get("Labels") or {}}
                )
        return images

    # Exit watching ------------------------------------------------------------------------
    def watch_exits(self, callback: ExitCallback) -> None:
        self._watch_task = asyncio.get_running_loop().create_task(self._watch(callback), name="docker-events")

    async def _watch(self, callback: ExitCallback) -> None:
        filters = json.dumps({"type": ["container"], "event": ["die"], "label": [f"{LABEL_AGENT}={self.agent_id}"]})
        while True:
            docker = aiodocker.Docker()
            try:
                subscriber = docker.events.subscribe(filters=filters)
                while True:
                    event = await subscriber.get()
                    if event is None:
                        break
                    attrs = event.get("Actor", {}).get("Attributes", {})
                    container_id = event.get("Actor", {}).get("ID") or event.get("id", "")
                    if container_id in self._stopping:
                        continue
                    code = attrs.get("exitCode")
                    await callback(attrs.get(LABEL_KERNEL, ""), int(code) if code is not None else None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the engine went away: retry
                log.warning("lost the Docker event stream (%s); retrying", exc)
            finally:
                await docker.events.stop()
                await docker.close()
            await asyncio.sleep(2)

    # Helpers ----------------------------------------------------------------------------------
    async def _ensure_image(self, image: str, progress: ProgressCallback | None = None) -> dict[str, Any]:
        """The image's inspect document, pulling it first when it is missing (and pulling is allowed)."""
        try:
            return await self.docker.images.inspect(image)
        except DockerError as exc:
            if exc.status != 404:
                raise self._translate(exc, f"looking up image {image!r}") from None
        except ENGINE_ERRORS as exc:
            raise ServiceUnavailable(f"Docker engine unavailable: {exc}") from None
        if self.config.docker.image_pull == "never":
            raise ImageNotFound(
                f"image {image!r} is not present on agent {self.agent_id} (pulling is disabled){_build_hint(image)}"
            )
        log.info("pulling image %s", image)
        tracker = PullProgress(image)
        try:
            async for line in self._pull_stream(image):
                tracker.feed(line)
                if progress is not None:
                    progress(tracker.summary())
        except (PullFailed, DockerError) as exc:
            # An error line in the stream (aiodocker raises DockerStreamError for it; the
            # tracker catches one it let through), or the engine refusing the request.
            message = exc.message
            missing = exc.missing if isinstance(exc, PullFailed) else (
                exc.status == 404 or is_missing_image_error(message)
            )
            if not missing:
                raise BackendError(
                    f"image {image!r} is not on agent {self.agent_id}, and pulling it failed: {message}"
                ) from None
            raise ImageNotFound(
                f"image {image!r} is not on agent {self.agent_id} and could not be pulled: {message}{_build_hint(image)}"
            ) from None
        except ENGINE_ERRORS as exc:
            raise ServiceUnavailable(f"Docker engine unavailable while pulling {image!r}: {exc}") from None
        log.info("%s", tracker.summary())
        try:
            return await self.docker.images.inspect(image)
        except DockerError as exc:
            raise self._translate(exc, f"looking up image {image!r} after pulling it") from None

    def _pull_stream(self, image: str) -> AsyncIterator[dict[str, Any]]:
        """The engine's pull progress objects (one seam, so tests can replay recorded ones)."""
        return self.docker.images.pull(image, stream=True, timeout=PULL_TIMEOUT_S)

    async def _remove_quietly(self, container_id: str) -> None:
        try:
            await self.docker.containers.container(container_id).delete(force=True)
        except DockerError as exc:
            if exc.status not in (404, 409):  # 409: a removal is already under way
                log.warning("could not remove container %s: %s", container_id[:12], exc.message)

    @staticmethod
    def _translate(exc: DockerError, doing: str) -> Exception:
        if exc.status == 404:
            return ImageNotFound(f"{doing}: {exc.message}")
        return BackendError(f"Docker failed while {doing}: {exc.message}")


def exit_note_from_inspect(info: dict[str, Any]) -> str | None:
    """``killed: out of memory (limit 64 MiB)`` for a container the kernel's OOM killer hit, else None."""
    if not (info.get("State") or {}).get("OOMKilled"):
        return None
    limit = int((info.get("HostConfig") or {}).get("Memory") or 0)
    return f"killed: out of memory (limit {limit >> 20} MiB)" if limit else "killed: out of memory"


def _build_hint(image: str) -> str:
    """Corral's own images are built locally, never pulled: say how."""
    if not image.startswith("corral/"):
        return ""
    from corral.kernels.recipe import list_recipes

    recipe = image.split("/", 1)[1].split(":", 1)[0]
    if recipe in {r.name for r in list_recipes()}:
        return f"; build it on the agent's host with `corral image build {recipe}`"
    return ""
