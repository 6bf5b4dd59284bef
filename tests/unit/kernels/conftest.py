from __future__ import annotations

from typing import AsyncIterator

import pytest

from .runner_process import RunnerProcess


@pytest.fixture
async def runner() -> AsyncIterator[RunnerProcess]:
    """A real runner process listening on a Unix socket in a temporary directory."""
    process = await RunnerProcess.start()
    await process.wait_for_socket()
    try:
        yield process
    finally:
        await process.stop()
