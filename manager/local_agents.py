"""Agents that run in the manager's own process (the embedded stack, ``corral up``).

A tunnel to a service of one of their kernels needs no manager → agent websocket: the manager asks the
agent object for the TCP connection (the runner hands it over) and relays the client's websocket to it
itself, one copy fewer per byte. Agents elsewhere are reached over their RPC as usual."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

ServiceConnector = Callable[[str, str], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class LocalAgents:
    def __init__(self) -> None:
        self._by_address: dict[str, ServiceConnector] = {}

    def register(self, address: str, connect: ServiceConnector) -> None:
        """``connect(kernel_id, service)`` of the agent advertising ``address``."""
        self._by_address[address.rstrip("/")] = connect

    def forget(self, address: str) -> None:
        self._by_address.pop(address.rstrip("/"), None)

    def connector(self, address: str) -> ServiceConnector | None:
        return self._by_address.get(address.rstrip("/"))
