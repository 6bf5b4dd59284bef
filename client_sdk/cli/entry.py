"""The ``corral`` executable. ``corral ssh-proxy`` (which OpenSSH runs for every connection) takes a
fast path that skips loading the whole CLI; everything else goes to ``corral.client.cli.main``."""
from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    endpoint = None
    if len(args) >= 2 and args[0] == "--endpoint":
        endpoint, args = args[1], args[2:]
    if len(args) == 2 and args[0] == "ssh-proxy" and not args[1].startswith("-"):
        from ..ssh_proxy import run

        sys.exit(run(args[1], endpoint))
    from .main import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
