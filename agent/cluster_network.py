"""The private Docker bridge network of each single-node cluster session on this agent.

Created when the session's first kernel starts here (an existing one is reused) and removed when its
last kernel here is gone, or by a sweep (after a restart, or when a removal was refused because a
container was still attached). One lock per session orders the network's creation, the creation and
start of a container on it, and its removal, so a removal never takes the network from under a kernel
being started; Docker's own name check (409) covers a create racing another process."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiodocker
from aiodocker.exceptions import DockerError
from aiodocker.networks import DockerNetworks

from corral.common.cluster import session_network_name
from corral.common.errors import BackendError, ServiceUnavailable

from .backend.base import ENGINE_ERRORS, LABEL_AGENT, LABEL_MANAGED, LABEL_PREFIX

log = logging.getLogger(__name__)

LABEL_NETWORK_SESSION = f"{LABEL_PREFIX}.session"
# Docker refuses to remove a network with containers attached: 403 (older engines) or 409.
IN_USE_STATUSES = (403, 409)
ENGINE_UNREACHABLE = 900  # aiodocker's status for "cannot connect to the engine"


def network_config(session_id: str, agent_id: str) -> dict[str, object]:
    return {
        "Name": session_network_name(session_id),
        "Driver": "bridge",
        "CheckDuplicate": True,  # engines before API 1.44 allow two networks of one name without it
        "Labels": {LABEL_MANAGED: "1", LABEL_NETWORK_SESSION: session_id, LABEL_AGENT: agent_id},
    }


class _KeyedLocks:
    """An asyncio lock per key, forgotten once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class SessionNetworks:
    def __init__(self, docker: Callable[[], aiodocker.Docker], agent_id: str) -> None:
        self._docker = docker  # called each time: the backend makes its client lazily
        self.agent_id = agent_id
        self._locks = _KeyedLocks()
        self.known: set[str] = set()  # sessions whose network this agent made or adopted

    @asynccontextmanager
    async def joined(self, session_id: str) -> AsyncIterator[str]:
        """Holds the session's network (created if missing) while a container is created and started on
        it; yields its name."""
        async with self._locks.hold(session_id):
            yield await self._ensure(session_id)

    async def ensure(self, session_id: str) -> str:
        """The session's network, created if missing; its name."""
        async with self.joined(session_id) as name:
            return name

    async def release(self, session_id: str) -> None:
        """The session's last kernel here is gone: remove its network, if this agent has one for it."""
        if session_id not in self.known:
            return
        async with self._locks.hold(session_id):
            if await self._remove(session_id):
                self.known.discard(session_id)

    async def sweep(self, wanted: Callable[[str], bool]) -> list[str]:
        """Removes this agent's session networks whose session ``wanted`` says has no kernel here any more
        (asked under the session's lock, so not about a kernel being started); adopts the others. Returns
        the sessions whose network went."""
        try:
            listed = await self._docker().networks.list(
                filters={"label": [f"{LABEL_MANAGED}=1", LABEL_NETWORK_SESSION, f"{LABEL_AGENT}={self.agent_id}"]}
            )
        except (DockerError, *ENGINE_ERRORS) as exc:
            log.warning("could not list the session networks: %s", exc)
            return []
        removed = []
        for network in listed:
            session_id = (network.get("Labels") or {}).get(LABEL_NETWORK_SESSION, "")
            if not session_id:
                continue
            async with self._locks.hold(session_id):
                if wanted(session_id):
                    self.known.add(session_id)
                elif await self._remove(session_id):
                    self.known.discard(session_id)
                    removed.append(session_id)
                    log.info("removed the network of session %s (no kernel of it left here)", session_id)
                else:
                    self.known.add(session_id)  # still in use: the next release or sweep tries again
        return removed

    async def _ensure(self, session_id: str) -> str:
        name = session_network_name(session_id)
        networks = self._docker().networks
        try:
            try:
                await networks.get(name)
            except DockerError as exc:
                if exc.status != 404:
                    raise
                await self._create(networks, session_id)
        except DockerError as exc:
            if exc.status == ENGINE_UNREACHABLE:
                raise ServiceUnavailable(f"Docker engine unavailable: {exc.message}") from None
            raise BackendError(f"Docker failed while setting up network {name}: {exc.message}") from None
        except ENGINE_ERRORS as exc:
            raise ServiceUnavailable(f"Docker engine unavailable: {exc}") from None
        self.known.add(session_id)
        return name

    async def _create(self, networks: DockerNetworks, session_id: str) -> None:
        try:
            await networks.create(network_config(session_id, self.agent_id))
        except DockerError as exc:
            if exc.status == 409:  # made meanwhile (another kernel of the session, elsewhere): use it
                log.info("network %s was created meanwhile: reusing it", session_network_name(session_id))
                return
            raise
        log.info("created network %s", session_network_name(session_id))

    async def _remove(self, session_id: str) -> bool:
        """Removes the network quietly; False if it is still in use (or Docker could not say)."""
        name = session_network_name(session_id)
        try:
            network = await self._docker().networks.get(name)
            await network.delete()
        except DockerError as exc:
            if exc.status == 404:
                return True
            if exc.status in IN_USE_STATUSES:
                log.debug("network %s is still in use; left for later", name)
            else:
                log.warning("could not remove network %s: %s", name, exc.message)
            return False
        except ENGINE_ERRORS as exc:
            log.warning("could not remove network %s: %s", name, exc)
            return False
        log.info("removed network %s", name)
        return True
