"""Unit tests: client paths are parsed into safe components or refused."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.storage_proxy.errors import PathRejected
from corral.storage_proxy.paths import parse_vfolder_path


@pytest.mark.parametrize(
    "raw, parts",
    [
        ("", ()),
        (".", ()),
        ("a", ("a",)),
        ("a/b/c.txt", ("a", "b", "c.txt")),
        ("a//b/./c/", ("a", "b", "c")),
        ("..a/b..", ("..a", "b..")),
        ("...", ("...",)),
        ("100%", ("100%",)),
        ("na\\me", ("na\\me",)),
        ("ünïcödé/文件", ("ünïcödé", "文件")),
    ],
)
def test_accepts_plain_relative_paths(raw: str, parts: tuple[str, ...]) -> None:
    assert parse_vfolder_path(raw) == parts


@pytest.mark.parametrize(
    "raw",
    [
        "..",
        "../x",
        "a/../../x",
        "a/..",
        "/etc/passwd",
        "//etc",
        "\\etc",
        "C:\\Windows",
        "a\x00b",
        "\x00",
        "..\\x",
        "%2e%2e/x",
        "%2E%2E%2Fx",
        "a/%2e%2e",
        "%2fetc%2fpasswd",
        "%00",
        "a%00.txt",
        "%252e%252e/x",  # double-encoded
        "%25252e%25252e",  # triple-encoded
        "x" * 5000,
        "a/" + "b" * 256,
    ],
)
def test_rejects_escapes(raw: str) -> None:
    with pytest.raises(PathRejected) as info:
        parse_vfolder_path(raw)
    assert info.value.status == 400


def test_rejects_non_strings() -> None:
    with pytest.raises(PathRejected):
        parse_vfolder_path(None)


@given(st.text(max_size=60))
def test_never_yields_dangerous_components(raw: str) -> None:
    try:
        parts = parse_vfolder_path(raw)
    except PathRejected:
        return
    for part in parts:
        assert part not in ("", ".", "..")
        assert "/" not in part and "\x00" not in part
