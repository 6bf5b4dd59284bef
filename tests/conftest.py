"""Suite-wide pytest setup.

Service fixtures (see tests/fixtures/): ``postgres_server``, ``postgres_dsn``,
``fresh_postgres_db``, ``etcd_endpoint``, ``etcd_endpoints``, ``docker_engine``,
``docker_url``.

Markers and fixtures are tied both ways:
  - a test marked ``docker`` / ``postgres`` / ``etcd`` gets the matching
    service started for it even if it does not request the fixture;
  - a test requesting a service fixture gets the matching marker, so
    ``-m "not docker"`` etc. deselect it.
A service that cannot be provided fails the test in CI (``CI`` truthy or
``CORRAL_TEST_STRICT=1``) and skips it, with the reason, elsewhere.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import strict_mode

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.etcd",
    "tests.fixtures.docker_engine",
]

# marker -> (fixture started for marked tests, fixtures that imply the marker)
_SERVICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "docker": ("docker_engine", ("docker_engine", "docker_url")),
    "postgres": ("postgres_server", ("postgres_server", "postgres_dsn", "fresh_postgres_db")),
    "etcd": ("etcd_endpoint", ("etcd_endpoint", "etcd_endpoints")),
}


def pytest_report_header(config: pytest.Config) -> str:
    mode = "fail (CI/strict)" if strict_mode() else "skip (local)"
    return f"corral: unavailable test services -> {mode}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for marker, (_, implied_by) in _SERVICES.items():
            if names.intersection(implied_by) and item.get_closest_marker(marker) is None:
                item.add_marker(marker)


@pytest.fixture(autouse=True)
def _services_for_markers(request: pytest.FixtureRequest) -> None:
    for marker, (fixture, _) in _SERVICES.items():
        if request.node.get_closest_marker(marker) is not None:
            request.getfixturevalue(fixture)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The manager's database URL: a fresh SQLite file, then a fresh PostgreSQL database (the same tests on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'corral.db'}"
    return str(request.getfixturevalue("fresh_postgres_db"))
