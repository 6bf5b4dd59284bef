"""`corral up`'s data-dir lock: one holder at a time, and the loser is told who holds it."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from corral.client.cli.data_dir_lock import LOCK_FILE, hold_data_dir
from corral.common.errors import ConfigError


def test_a_second_holder_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with hold_data_dir(data):
        record = json.loads((data / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() and record["holder"] == "corral up"
        with pytest.raises(ConfigError) as err:
            with hold_data_dir(data):
                pass  # pragma: no cover - not reached
    message = str(err.value)
    assert re.fullmatch(
        rf"data dir {re.escape(str(data))} is in use by corral up \(pid {os.getpid()}, since \d\d:\d\d:\d\d\); stop it first",
        message,
    ), message


def test_the_lock_is_free_again_once_released(tmp_path: Path) -> None:
    with hold_data_dir(tmp_path):
        pass
    with hold_data_dir(tmp_path):  # the file stays; the lock does not
        pass


def test_an_unreadable_record_still_refuses(tmp_path: Path) -> None:
    with hold_data_dir(tmp_path):
        (tmp_path / LOCK_FILE).write_text("garbage")
        with pytest.raises(ConfigError, match="is in use by another process; stop it first"):
            with hold_data_dir(tmp_path):
                pass  # pragma: no cover - not reached


def test_a_data_dir_that_cannot_be_made_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=rf"cannot use data dir {re.escape(str(tmp_path))}/file/data: "):
        with hold_data_dir(tmp_path / "file" / "data"):
            pass  # pragma: no cover - not reached
