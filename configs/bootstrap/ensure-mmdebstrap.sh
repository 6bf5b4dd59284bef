#!/usr/bin/env bash
# mmdebstrap builds the base session image from Debian packages (no registry needed).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
if command -v mmdebstrap >/dev/null 2>&1; then
    exit 0
fi
apt_install mmdebstrap
