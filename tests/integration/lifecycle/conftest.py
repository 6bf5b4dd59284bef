from __future__ import annotations

from typing import AsyncIterator

import pytest

from .harness import Lab, open_lab


@pytest.fixture
async def lab(db_url: str) -> AsyncIterator[Lab]:
    lab = await open_lab(db_url)
    try:
        yield lab
    finally:
        await lab.close()
