"""Reads the machine's APT source configuration to find the Debian mirror.

The builder never names a mirror itself: it bootstraps from whatever this
machine's apt uses (``/etc/apt/sources.list`` one-line entries and
``/etc/apt/sources.list.d/*.list`` / ``*.sources`` deb822 stanzas).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from corral.kernels.errors import ImageBuildError

APT_ETC = Path("/etc/apt")
_SUPPORTED_SCHEMES = ("http://", "https://", "file:/")


@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str
    components: tuple[str, ...]

    def as_one_line(self) -> str:
        """The sources.list form mmdebstrap accepts as a mirror argument."""
        return " ".join(["deb", self.uri, self.suite, *self.components])


def read_apt_sources(apt_etc: Path = APT_ETC) -> list[AptSource]:
    """Every binary (``deb``) source configured on this machine, in apt's order."""
    sources: list[AptSource] = []
    main_list = apt_etc / "sources.list"
    if main_list.is_file():
        sources.extend(parse_one_line_sources(main_list.read_text()))
    parts = apt_etc / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                sources.extend(parse_one_line_sources(path.read_text()))
            elif path.suffix == ".sources":
                sources.extend(parse_deb822_sources(path.read_text()))
    return sources


def mirror_lines_for_suite(suite: str, apt_etc: Path = APT_ETC) -> list[str]:
    """Mirror arguments for mmdebstrap: the suite itself plus its -updates/-security.

    Raises ImageBuildError when no configured source serves ``suite``.
    """
    wanted = (suite, f"{suite}-updates", f"{suite}-security")
    lines: list[str] = []
    for source in read_apt_sources(apt_etc):
        if source.suite in wanted and source.uri.startswith(_SUPPORTED_SCHEMES):
            line = source.as_one_line()
            if line not in lines:
                lines.append(line)
    if not any(line.split()[2] == suite for line in lines):
        raise ImageBuildError(
            f"no APT source for Debian suite {suite!r} in {apt_etc}/sources.list(.d); "
            "configure one so that images can be bootstrapped from it"
        )
    return lines


def parse_one_line_sources(text: str) -> list[AptSource]:
    sources = []
    for raw_line in text.splitlines():
        line = raw_line.split("#", 1)[0].strip()
        if not line:
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line)  # drop "[arch=amd64 signed-by=...]" options
        fields = line.split()
        if len(fields) < 3 or fields[0] != "deb":
            continue
        sources.append(AptSource(uri=fields[1].rstrip("/"), suite=fields[2], components=tuple(fields[3:])))
    return sources


def parse_deb822_sources(text: str) -> list[AptSource]:
    sources = []
    for stanza in _deb822_stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            for suite in stanza.get("suites", "").split():
                sources.append(AptSource(uri=uri.rstrip("/"), suite=suite, components=components))
    return sources


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    """Field names lower-cased; continuation lines joined with spaces."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last_key = ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, last_key = {}, ""
            continue
        if line[0] in " \t" and last_key:
            current[last_key] += " " + line.strip()
            continue
        key, _, value = line.partition(":")
        last_key = key.strip().lower()
        current[last_key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas
