"""Fixtures for the client SDK and CLI tests: a fake manager, and the env pointing at it."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from corral.client.api import AsyncCorralClient
from corral.client.config import ClientConfig
from fake_corral_manager import ACCESS_KEY, SECRET_KEY, FakeManager, ThreadedServer


@pytest.fixture(autouse=True)
def isolated_client_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Never read the developer's real ~/.config/corral/client.toml."""
    config_path = tmp_path / "client.toml"
    monkeypatch.setenv("CORRAL_CONFIG", str(config_path))
    for name in ("CORRAL_ENDPOINT", "CORRAL_ACCESS_KEY", "CORRAL_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    return config_path


@pytest.fixture
def fake_manager() -> Iterator[FakeManager]:
    manager = FakeManager()
    yield manager
    assert manager.schema_violations == [], "the fake manager sent what the real one never would"


@pytest.fixture
def manager_url(fake_manager: FakeManager) -> Iterator[str]:
    server = ThreadedServer(fake_manager.app())
    yield server.start()
    server.stop()


@pytest.fixture
def cli_env(manager_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CORRAL_ENDPOINT", manager_url)
    monkeypatch.setenv("CORRAL_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("CORRAL_SECRET_KEY", SECRET_KEY)
    return manager_url


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
async def client(aiohttp_server, fake_manager: FakeManager):  # type: ignore[no-untyped-def]
    server = await aiohttp_server(fake_manager.app())
    config = ClientConfig(endpoint=str(server.make_url("")).rstrip("/"), access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    async with AsyncCorralClient(config) as c:
        yield c
