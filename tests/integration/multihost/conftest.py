"""Tests on the multi-host rig (tests/fixtures/multihost.py, configs/bootstrap/multihost.sh)."""
from tests.fixtures.multihost import multihost  # noqa: F401 - the session-scoped rig fixture
from tests.integration.spine.conftest import base_image  # noqa: F401 - corral/python, built if missing
