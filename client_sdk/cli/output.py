"""Writing to the terminal: JSON for machines, rich for people, raw program output."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console


PIPE_WIDTH = 160


def console() -> Console:
    # Built per call so it writes to whatever sys.stdout is now (CliRunner swaps it).
    # Piped into grep/less, 80 columns would wrap table rows; like docker ps,
    # prefer long lines there unless COLUMNS says otherwise.
    interactive = sys.stdout.isatty() if hasattr(sys.stdout, "isatty") else False
    width = None if interactive or "COLUMNS" in os.environ else PIPE_WIDTH
    return Console(soft_wrap=False, highlight=False, width=width)


def print_json(doc: Any) -> None:
    """The raw document and nothing else, for ``--json``."""
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))


def print_json_line(doc: Any) -> None:
    click.echo(json.dumps(doc, ensure_ascii=False, default=str))


def write_program_output(stream: str, data: str) -> None:
    """Program output verbatim (no ANSI stripping, no added newline), flushed at once."""
    target = sys.stderr if stream == "stderr" else sys.stdout
    try:
        target.write(data)
    except UnicodeEncodeError:
        encoding = getattr(target, "encoding", None) or "utf-8"
        target.write(data.encode(encoding, errors="replace").decode(encoding))
    target.flush()
