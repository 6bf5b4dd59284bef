"""The client must install and import without the server extra."""
from __future__ import annotations

import subprocess
import sys

SERVER_MODULES = ("sqlalchemy", "aiodocker", "pynvml", "aetcd", "asyncpg", "alembic",
                  "corral.manager", "corral.agent", "corral.kernels", "corral.storage_proxy")


def test_client_and_cli_import_no_server_packages() -> None:
    code = (
        "import sys, corral.client, corral.client.cli.main, corral.client.sync\n"
        "from corral.client import AsyncCorralClient, CorralClient, Session\n"
        f"bad = [m for m in sys.modules if m.startswith({SERVER_MODULES!r})]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
