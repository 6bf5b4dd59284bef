"""`corral up` as a process: a data dir in use, and a corrupt one, are one readable line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from corral.client.cli.data_dir_lock import hold_data_dir

CORRAL = str(Path(sys.executable).with_name("corral"))


def corral_up(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(root / "home"), "XDG_CONFIG_HOME": str(root / "home" / ".config")}
    for name in ("CORRAL_CONFIG", "CORRAL_ENDPOINT", "CORRAL_ACCESS_KEY", "CORRAL_SECRET_KEY"):
        env.pop(name, None)
    return subprocess.run(
        [CORRAL, *args, "up", "--data-dir", str(root / "data"), "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def test_second_up_on_a_data_dir_in_use_names_the_holder(tmp_path: Path) -> None:
    with hold_data_dir(tmp_path / "data"):  # as a running `corral up` holds it
        result = corral_up(tmp_path)
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: data dir {tmp_path / 'data'} is in use by corral up (pid {os.getpid()}, since ")
    assert result.stderr.endswith("); stop it first\n") and result.stderr.count("\n") == 1


def test_corrupt_embedded_toml_is_named_and_verbose_adds_the_traceback(tmp_path: Path) -> None:
    state = tmp_path / "data" / "embedded.toml"
    state.parent.mkdir()
    state.write_text("cluster_secret = \n")
    result = corral_up(tmp_path)
    assert result.returncode == 3
    assert result.stderr.startswith(f"error: {state} is corrupt: ") and result.stderr.endswith("; fix or delete it\n")
    assert result.stderr.count("\n") == 1
    verbose = corral_up(tmp_path, "-v")
    assert verbose.returncode == 3
    assert verbose.stderr.startswith("Traceback") and verbose.stderr.splitlines()[-1] == result.stderr.strip()
