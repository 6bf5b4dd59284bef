"""Progress stages parsed from mmdebstrap --verbose output."""
from __future__ import annotations

from corral.kernels.build_progress import BuildProgress, MmdebstrapProgressParser

SAMPLE = """\
I: automatically chosen mode: root
I: running apt-get update...
Get:1 http://mirror.example/debian bookworm InRelease [151 kB]
Get:2 http://mirror.example/debian bookworm/main amd64 Packages [8790 kB]
Fetched 8941 kB in 1s (11.7 MB/s)
I: downloading packages with apt...
0 upgraded, 2 newly installed, 0 to remove and 0 not upgraded.
Need to get 38.0 MB of archives.
Get:1 http://mirror.example/debian bookworm/main amd64 gcc-12-base amd64 12.2.0-14 [37.6 kB]
Get:2 http://mirror.example/debian bookworm/main amd64 libc6 amd64 2.36-9 [2757 kB]
I: extracting archives...
I: installing essential packages...
Setting up gcc-12-base:amd64 (12.2.0-14) ...
Setting up libc6:amd64 (2.36-9) ...
I: installing remaining packages inside the chroot...
0 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.
Get:1 http://mirror.example/debian bookworm/main amd64 python3 amd64 3.11.2-1+b1 [26.3 kB]
Setting up python3 (3.11.2-1+b1) ...
I: running --customize-hook in shell: sh -c 'set -e
I: cleaning package lists and apt cache...
I: creating tarball...
"""


def test_stages_and_counts() -> None:
    parser = MmdebstrapProgressParser()
    events = [event for line in SAMPLE.splitlines() if (event := parser.feed(line))]
    summary = [(e.stage, e.message, e.current, e.total) for e in events]
    assert summary == [
        ("resolving", "running apt-get update", None, None),
        ("downloading", "downloading packages", None, None),
        ("downloading", "gcc-12-base", 1, 2),
        ("downloading", "libc6", 2, 2),
        ("extracting", "extracting archives", None, None),
        ("installing", "installing essential packages", None, None),
        ("installing", "gcc-12-base:amd64", 1, 2),
        ("installing", "libc6:amd64", 2, 2),
        ("installing", "installing remaining packages", None, None),
        ("downloading", "python3", 3, 3),
        ("installing", "python3", 3, 3),
        ("customizing", "running --customize-hook", None, None),
        ("customizing", "cleaning package lists", None, None),
    ]
    assert parser.tail[-1] == "I: creating tarball..."


def test_describe() -> None:
    assert BuildProgress("installing", "libc6", 3, 10).describe() == "installing [3/10]: libc6"
    assert BuildProgress("importing", "streaming", 2_500_000, unit="bytes").describe() == "importing [2.5 MB]: streaming"
    assert BuildProgress("extracting", "extracting archives").describe() == "extracting: extracting archives"
    assert BuildProgress("installing", "x", 4, 5).done == 4
