"""The pip layer's pure parts: platform tags, the host-side pip command, progress parsing, commit changes."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from corral.kernels.build_progress import BuildProgress
from corral.kernels.errors import ImageBuildError
from corral.kernels.pip_layer import (
    SUITE_PYTHON,
    PipDownloadProgressParser,
    PipInstallProgressParser,
    download_wheels,
    layer_changes,
    pip_download_command,
    platform_tags,
)


def test_platform_tags_go_from_the_images_glibc_down_to_manylinux2014() -> None:
    tags = platform_tags((2, 36), "x86_64")
    assert tags[0] == "manylinux_2_36_x86_64"
    assert tags[-3:] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "any"]
    assert len(tags) == 36 - 17 + 1 + 2
    assert platform_tags((2, 36), "arm64")[0] == "manylinux_2_36_aarch64"
    assert platform_tags((2, 36), "AMD64")[0] == "manylinux_2_36_x86_64"


def test_bookworm_is_known() -> None:
    assert SUITE_PYTHON["bookworm"].version == "3.11"
    assert SUITE_PYTHON["bookworm"].glibc == (2, 36)


def test_the_download_command_uses_the_hosts_pip_configuration(tmp_path: Path) -> None:
    command = pip_download_command(
        ["jupyterlab>=4.2,<5"], tmp_path, python_version="3.11", platforms=["manylinux_2_36_x86_64", "any"],
        executable="/usr/bin/python3",
    )
    assert command[:4] == ["/usr/bin/python3", "-m", "pip", "download"]
    assert command[-2:] == ["--", "jupyterlab>=4.2,<5"]
    for expected in (
        ["--dest", str(tmp_path)], ["--python-version", "3.11"], ["--implementation", "cp"], ["--abi", "cp311"],
    ):
        index = command.index(expected[0])
        assert command[index:index + 2] == expected
    assert "--only-binary=:all:" in command
    assert "--platform=manylinux_2_36_x86_64" in command and "--platform=any" in command
    # Nothing that would override or bypass the host's own configuration.
    assert not [word for word in command if "index" in word or "isolated" in word or "find-links" in word]


def test_download_progress() -> None:
    parser = PipDownloadProgressParser()
    lines = [
        "Looking in indexes: whatever",
        "Collecting jupyterlab<5,>=4.2",
        "  Downloading jupyterlab-4.6.6-py3-none-any.whl.metadata (16 kB)",
        "  Downloading jupyterlab-4.6.6-py3-none-any.whl (17.3 MB)",
        "Collecting httpx>=0.25.0 (from jupyterlab<5,>=4.2)",
        "Processing /some/dir/httpx-0.28.1-py3-none-any.whl (from jupyterlab<5,>=4.2)",
        "  File was already downloaded /tmp/x/six-1.17.0-py2.py3-none-any.whl",
        "Saved /tmp/x/jupyterlab-4.6.6-py3-none-any.whl",
        "Successfully downloaded jupyterlab httpx six",
    ]
    events = [event for event in map(parser.feed, lines) if event is not None]
    assert events == [
        BuildProgress("resolving", "jupyterlab<5,>=4.2", 1),
        BuildProgress("downloading", "jupyterlab-4.6.6-py3-none-any.whl (17.3 MB)", 1),
        BuildProgress("resolving", "httpx>=0.25.0", 2),
        BuildProgress("downloading", "httpx-0.28.1-py3-none-any.whl (local)", 2),
        BuildProgress("downloading", "six-1.17.0-py2.py3-none-any.whl (cached)", 3),
        BuildProgress("downloading", "3 distributions downloaded", 3, 3),
    ]
    assert parser.tail[-1] == "Successfully downloaded jupyterlab httpx six"
    error = parser.feed("ERROR: No matching distribution found for nope")
    assert error is not None and error.message.startswith("ERROR: No matching")


def test_install_progress() -> None:
    parser = PipInstallProgressParser(2)
    lines = [
        "Looking in links: /wheels",
        "Processing /wheels/six-1.17.0-py2.py3-none-any.whl",
        "Processing /wheels/idna-3.10-py3-none-any.whl",
        "Installing collected packages: six, idna",
        "Successfully installed idna-3.10 six-1.17.0",
    ]
    events = [event for event in map(parser.feed, lines) if event is not None]
    assert [(event.stage, event.current, event.total) for event in events] == [
        ("installing", 1, 2), ("installing", 2, 2), ("installing", 2, 2), ("installing", 2, 2),
    ]
    assert events[0].message == "six-1.17.0-py2.py3-none-any.whl"


_BASE_CONFIG = {
    "User": "1000:1000",
    "WorkingDir": "/home/work",
    "Env": ["LANG=C.UTF-8", "HOME=/home/work", "PATH=/usr/local/bin:/usr/bin:/bin"],
    "Cmd": ["/bin/bash"],
    "Entrypoint": None,
}


def test_layer_changes_restore_the_base_config_and_put_the_venv_first() -> None:
    changes = layer_changes(_BASE_CONFIG, {"ai.corral.recipe": "jupyter"}, with_venv=True)
    assert changes == [
        "USER 1000:1000",
        "WORKDIR /home/work",
        'ENV PATH="/opt/venv/bin:/usr/local/bin:/usr/bin:/bin"',
        'LABEL "ai.corral.recipe"="jupyter"',
        'CMD ["/bin/bash"]',
    ]


def test_layer_changes_without_a_venv_or_on_a_venv_keep_the_path() -> None:
    assert 'ENV PATH="/usr/local/bin:/usr/bin:/bin"' in layer_changes(_BASE_CONFIG, {}, with_venv=False)
    on_venv = dict(_BASE_CONFIG, Env=["PATH=/opt/venv/bin:/usr/bin"])
    assert 'ENV PATH="/opt/venv/bin:/usr/bin"' in layer_changes(on_venv, {}, with_venv=True)


def test_layer_changes_restore_an_entrypoint_and_a_root_user() -> None:
    config = {"User": "", "WorkingDir": "", "Env": [], "Cmd": None, "Entrypoint": ["/init"]}
    changes = layer_changes(config, {}, with_venv=True)
    assert changes[:2] == ["USER root", "WORKDIR /"]
    assert changes[-2:] == ["CMD []", 'ENTRYPOINT ["/init"]']
    assert any(change.startswith('ENV PATH="/opt/venv/bin:/usr/local/sbin:') for change in changes)


def _fake_python(tmp_path: Path, body: str) -> str:
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


async def test_download_wheels_streams_progress_and_passes_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_SOMETHING", "from-the-host")
    args_file = tmp_path / "args"
    executable = _fake_python(
        tmp_path,
        f'printf "%s\\n" "$@" > {args_file}\n'
        'echo "Collecting six"\necho "  Downloading six-1.17.0-py2.py3-none-any.whl (11 kB)"\n'
        f'echo "$PIP_SOMETHING" > {tmp_path / "env"}\necho "Successfully downloaded six"\n',
    )
    events: list[BuildProgress] = []
    await download_wheels(
        ["six"], tmp_path, python_version="3.11", platforms=["any"], report=events.append, executable=executable
    )
    assert [event.stage for event in events] == ["resolving", "resolving", "downloading", "downloading"]
    assert args_file.read_text().splitlines()[:2] == ["-m", "pip"]
    assert (tmp_path / "env").read_text() == "from-the-host\n"  # the host's PIP_* settings reach pip


async def test_a_failing_download_is_an_image_build_error_with_pips_last_lines(tmp_path: Path) -> None:
    executable = _fake_python(
        tmp_path, 'echo "Collecting nope"\necho "ERROR: No matching distribution found for nope"\nexit 1\n'
    )
    with pytest.raises(ImageBuildError, match="(?s)exited with code 1.*No matching distribution found for nope"):
        await download_wheels(
            ["nope"], tmp_path, python_version="3.11", platforms=["any"], report=lambda event: None,
            executable=executable,
        )
