"""Reading the Debian mirror from the machine's APT configuration."""
from __future__ import annotations

from pathlib import Path

import pytest

from corral.kernels.apt_sources import (
    mirror_lines_for_suite,
    parse_deb822_sources,
    parse_one_line_sources,
    read_apt_sources,
)
from corral.kernels.errors import ImageBuildError

DEB822 = """\
Types: deb deb-src
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm
Components: main

Types: deb-src
URIs: http://sources-only.example/debian
Suites: bookworm
Components: main
"""


def test_deb822_stanzas_expand_uris_and_suites() -> None:
    sources = parse_deb822_sources(DEB822)
    assert [(s.uri, s.suite, s.components) for s in sources] == [
        ("http://mirror.example/debian", "bookworm", ("main", "contrib")),
        ("http://mirror.example/debian", "bookworm-updates", ("main", "contrib")),
        ("http://security.example/debian-security", "bookworm-security", ("main",)),
    ]


def test_one_line_entries_with_options_and_comments() -> None:
    text = (
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main # trailing\n"
        "deb-src http://mirror.example/debian bookworm main\n"
        "deb https://other.example/apt other-bookworm main\n"
    )
    sources = parse_one_line_sources(text)
    assert [s.as_one_line() for s in sources] == [
        "deb http://mirror.example/debian bookworm main",
        "deb https://other.example/apt other-bookworm main",
    ]


def _apt_etc(tmp_path: Path, *, sources: str = "", one_line: str = "") -> Path:
    (tmp_path / "sources.list.d").mkdir()
    if sources:
        (tmp_path / "sources.list.d" / "debian.sources").write_text(sources)
    if one_line:
        (tmp_path / "sources.list").write_text(one_line)
    (tmp_path / "sources.list.d" / "other.sources.disabled").write_text(
        "Types: deb\nURIs: http://ignored.example\nSuites: bookworm\nComponents: main\n"
    )
    return tmp_path


def test_mirror_lines_pick_the_suite_and_its_updates_and_security(tmp_path: Path) -> None:
    apt_etc = _apt_etc(tmp_path, sources=DEB822, one_line="deb http://unrelated.example/x trixie main\n")
    assert mirror_lines_for_suite("bookworm", apt_etc) == [
        "deb http://mirror.example/debian bookworm main contrib",
        "deb http://mirror.example/debian bookworm-updates main contrib",
        "deb http://security.example/debian-security bookworm-security main",
    ]
    assert len(read_apt_sources(apt_etc)) == 4


def test_missing_suite_is_a_clear_error(tmp_path: Path) -> None:
    apt_etc = _apt_etc(tmp_path, one_line="deb http://mirror.example/debian trixie main\n")
    with pytest.raises(ImageBuildError, match="no APT source for Debian suite 'bookworm'"):
        mirror_lines_for_suite("bookworm", apt_etc)
