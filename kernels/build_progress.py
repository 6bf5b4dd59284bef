"""Build progress: stages parsed from ``mmdebstrap --verbose`` stderr, plus the import.

Stages, in order: ``resolving`` (apt-get update), ``downloading`` (current /
total packages), ``extracting``, ``installing`` (packages set up / total),
``customizing``, ``importing`` (bytes streamed into Docker), ``tagging``,
``done``. ``reused`` is reported alone when the image already exists.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

STAGES = (
    "resolving", "downloading", "extracting", "installing", "customizing",
    "importing", "tagging", "done", "reused",
)


@dataclass(frozen=True)
class BuildProgress:
    stage: str
    message: str
    current: int | None = None
    total: int | None = None
    unit: str = "packages"  # or "bytes" while importing

    @property
    def done(self) -> int | None:
        """Alias of ``current`` (what progress bars call it)."""
        return self.current

    def describe(self) -> str:
        if self.current is None:
            return f"{self.stage}: {self.message}"
        if self.unit == "bytes":
            amount = f"{self.current / 1e6:.1f} MB"
        elif self.total:
            amount = f"{self.current}/{self.total}"
        else:
            amount = str(self.current)
        return f"{self.stage} [{amount}]: {self.message}"


ProgressCallback = Callable[[BuildProgress], None]

_STAGE_BY_INFO_LINE = (
    ("running apt-get update", "resolving"),
    ("downloading packages", "downloading"),
    ("extracting archives", "extracting"),
    ("installing essential packages", "installing"),
    ("installing remaining packages", "installing"),
    ("running --customize-hook", "customizing"),
    ("cleaning package lists", "customizing"),
)
_NEWLY_INSTALLED = re.compile(r"^\d+ upgraded, (\d+) newly installed")
_PACKAGE_DOWNLOAD = re.compile(r"^Get:\d+ \S+ \S+ \S+ (\S+) \S+ \S+")  # "Get:7 URI suite/comp arch NAME arch VERSION [size]"
_SETTING_UP = re.compile(r"^Setting up (\S+)")


class MmdebstrapProgressParser:
    """Turns mmdebstrap's verbose stderr lines into BuildProgress events.

    Feed every line to ``feed``; it returns an event when the line says
    something a user wants to see, otherwise None. The last lines are kept for
    error messages.
    """

    def __init__(self, tail_size: int = 30) -> None:
        self.stage = "resolving"
        self.packages_total = 0
        self.downloaded = 0
        self.installed = 0
        self.tail: list[str] = []
        self._tail_size = tail_size

    def feed(self, line: str) -> BuildProgress | None:
        line = line.rstrip()
        if not line:
            return None
        self.tail = (self.tail + [line])[-self._tail_size:]
        if line.startswith("I: "):
            return self._on_info(line[3:])
        if line.startswith("E: "):
            return BuildProgress(self.stage, line[3:])
        newly_installed = _NEWLY_INSTALLED.match(line)
        if newly_installed:
            self.packages_total += int(newly_installed.group(1))
            return None
        download = _PACKAGE_DOWNLOAD.match(line)
        if download and self.stage in ("downloading", "installing") and "Packages" not in line:
            self.downloaded += 1
            return BuildProgress("downloading", download.group(1), self.downloaded, self.packages_total or None)
        setting_up = _SETTING_UP.match(line)
        if setting_up:
            self.installed += 1
            return BuildProgress("installing", setting_up.group(1), self.installed, self.packages_total or None)
        return None

    def _on_info(self, text: str) -> BuildProgress | None:
        for marker, stage in _STAGE_BY_INFO_LINE:
            if text.startswith(marker):
                self.stage = stage
                return BuildProgress(stage, marker)
        return None
