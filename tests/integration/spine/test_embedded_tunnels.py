"""`corral up`'s embedded stack: the manager relays tunnels to its in-process agent's sessions itself (no
manager → agent websocket), with the same bytes, half-close and refusals as the networked path."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from corral.client.api import AsyncCorralClient
from corral.client.config import ClientConfig
from corral.client.embedded_stack import EmbeddedStack
from corral.common.errors import NotFound

pytestmark = [pytest.mark.docker]


async def test_tunnels_through_the_embedded_stack(tmp_path: Path, base_image: str) -> None:
    stack = EmbeddedStack(tmp_path / "data", "127.0.0.1", 0, write_client_config=False)
    await stack.start()
    try:
        assert stack.manager.local_agents.connector(stack.agent.address) is not None
        secrets = stack.secrets
        async with AsyncCorralClient(ClientConfig(stack.manager.url, secrets.admin_access_key,
                                                  secrets.admin_secret_key)) as client:
            session = await client.create_session(resources={"mem": "128m"})
            await client.wait_for_status(session.id, {"RUNNING"}, timeout=60)
            tunnel = await client.open_tunnel(session.id, "sshd")
            assert (await asyncio.wait_for(tunnel.receive(), 10)).startswith(b"SSH-2.0-OpenSSH")
            await tunnel.send(b"SSH-2.0-test\r\n")
            await tunnel.send_eof()  # sshd reads EOF and closes: the tunnel ends cleanly
            async with asyncio.timeout(10):
                while await tunnel.receive():
                    pass
            with pytest.raises(NotFound, match="this session has: sshd"):
                await client.open_tunnel(session.id, "nope")
            await client.destroy_session(session.id)
    finally:
        await stack.stop()
