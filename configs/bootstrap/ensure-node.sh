#!/usr/bin/env bash
# Make sure Node.js (20+) and npm are there to build the web UI (manager/webui);
# with --with-chromium also Debian's chromium, which the browser tests
# (tests/e2e/test_webui.py, Playwright) drive at /usr/bin/chromium.
# Installs only what is missing, through apt (lib.sh apt_install).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

with_chromium=0
for arg in "$@"; do
    case "$arg" in
        --with-chromium) with_chromium=1 ;;
        *) die "unknown argument: $arg" ;;
    esac
done

missing=()
if ! command -v node >/dev/null 2>&1; then
    missing+=(nodejs)
fi
if ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi
if [ "$with_chromium" = 1 ] && [ ! -x /usr/bin/chromium ]; then
    missing+=(chromium)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
else
    log "node, npm$([ "$with_chromium" = 1 ] && echo ' and chromium') already installed"
fi

command -v node >/dev/null 2>&1 || die "node still missing after install"
command -v npm >/dev/null 2>&1 || die "npm still missing after install"
major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$major" -lt 20 ]; then
    die "Node.js $(node --version) is too old for the web UI build (Vite needs 20.19+); install Node.js 20 or newer"
fi
log "node $(node --version), npm $(npm --version)"
