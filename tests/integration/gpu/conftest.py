"""GPU integration tests run on the spine's in-process cluster with mock-GPU agents."""
from __future__ import annotations

from tests.integration.spine.conftest import base_image  # noqa: F401 - re-exported fixture
