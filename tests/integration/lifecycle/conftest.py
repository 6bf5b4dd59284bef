from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from .harness import Lab, open_lab


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'corral.db'}"
    return request.getfixturevalue("fresh_postgres_db")


@pytest.fixture
async def lab(db_url: str) -> AsyncIterator[Lab]:
    lab = await open_lab(db_url)
    try:
        yield lab
    finally:
        await lab.close()
